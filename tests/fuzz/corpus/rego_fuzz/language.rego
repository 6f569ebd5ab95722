package x
import rego.v1
p contains x if { some x in input.a; x != 1 }
q[k] := v if { some k, v in {"a": 1} }
f(x) := y if y := x * 2
r := f(2)
s := [y | y := input.a[_]]
t if every z in [1,2] { z > 0 }
u := {k: 1 | some k in ["a"]} if { not input.zz } else := 2
