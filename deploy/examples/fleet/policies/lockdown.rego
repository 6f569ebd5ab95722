package lockdown

import rego.v1

# Fail-safe set: applies once a device has been out of contact for longer than its bundle's
# offline.max_age. Workloads already running are not touched; new ones are refused, except the
# device's own system workloads.
deny contains msg if {
	input.request.kind.kind == "Pod"
	not input.request.namespace == "kube-system"
	msg := sprintf("offline for %v s, past the bundle's limit: new workloads are refused until the device is back in contact", [data.edge.connectivity.offline_seconds])
}
