module moduvex/bench/compare/go

go 1.19
