package finops_test

import rego.v1

# Run with: edgectl policy test deploy/examples/fleet
pod(project, gpus) := {"request": {
	"kind": {"kind": "Pod"},
	"object": {
		"metadata": {"labels": {"apexlogic.ai/project": project}},
		"spec": {"containers": [{"resources": {"requests": {"nvidia.com/gpu": gpus}}}]},
	},
}}

test_within_budget_is_allowed if {
	count(data.finops.deny) == 0 with input as pod("vision", "2")
}

test_over_budget_is_denied if {
	msgs := data.finops.deny with input as pod("speech", "4")
	count(msgs) == 1
	some msg in msgs
	contains(msg, "project 'speech'")
	contains(msg, "(10)")
}

test_unknown_project_has_no_budget_to_break if {
	count(data.finops.deny) == 0 with input as pod("unknown", "8")
}
