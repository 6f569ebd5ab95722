package x
p if q
q if p
