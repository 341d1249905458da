module noa.example/runtimes/tests/gonet

go 1.19
