package budget_test

import rego.v1

import data.budget

pod(project, gpus) := {"request": {"kind": {"kind": "Pod"}, "object": {
	"metadata": {"labels": {"apexlogic.ai/project": project}},
	"spec": {"containers": [{"name": "c", "resources": {"requests": {"nvidia.com/gpu": gpus}}}]},
}}}

budgets := {
	"unit_costs": {"gpu_hour": 2.5, "npu_kiloinference": 0.01, "kwh": 0.3},
	"budgets": {"vision": {"day": 40, "month": 800}},
}

test_allowed_with_no_usage if {
	count(budget.deny) == 0 with input as pod("vision", "1") with data.budget_data as budgets with data.edge.usage as {}
}

test_denied_when_day_budget_spent if {
	usage := {"vision": {"day": {"gpu_seconds": 57600, "npu_inferences": 0, "energy_joules": 0}}}
	some msg in budget.deny with input as pod("vision", "1") with data.budget_data as budgets with data.edge.usage as usage
	contains(msg, "this day")
}

test_allowed_just_under_budget if {
	# 14 GPU-hours spent (35) + one hour of one GPU (2.5) = 37.5 <= 40
	usage := {"vision": {"day": {"gpu_seconds": 50400, "npu_inferences": 0, "energy_joules": 0}}}
	count(budget.deny) == 0 with input as pod("vision", "1") with data.budget_data as budgets with data.edge.usage as usage
}

test_unknown_project_denied if {
	count(budget.deny) == 1 with input as pod("nobody", "1") with data.budget_data as budgets with data.edge.usage as {}
}
