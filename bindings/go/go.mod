module moduvex/bindings/go

go 1.19
