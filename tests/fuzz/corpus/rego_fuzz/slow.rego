package x
p := count([1 | some a in numbers.range(1, 1000); some b in numbers.range(1, 1000)])
