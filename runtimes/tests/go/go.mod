module noa.example/runtimes/tests/go

go 1.19
