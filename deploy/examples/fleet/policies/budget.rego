package budget

import rego.v1

# Deny a workload when its project's metered spend, plus one hour of the accelerators it asks
# for, would pass the project's budget for a window (day, month). Spend comes from the usage the
# device meters itself (data.edge.usage), so the budget keeps biting while the device is offline.

# Unit costs: per GPU-hour, per 1000 NPU inferences, per kWh.
spend(usage) := total if {
	costs := data.budget_data.unit_costs
	gpu := (usage.gpu_seconds / 3600) * costs.gpu_hour
	npu := (usage.npu_inferences / 1000) * costs.npu_kiloinference
	energy := (usage.energy_joules / 3600000) * costs.kwh
	total := (gpu + npu) + energy
}

spent(project, window) := spend(data.edge.usage[project][window])

spent(project, window) := 0 if not data.edge.usage[project][window]

# One hour of the GPUs the workload requests.
estimate := sum([gpus |
	some container in input.request.object.spec.containers
	gpus := to_number(object.get(container, ["resources", "requests", "nvidia.com/gpu"], 0))
]) * data.budget_data.unit_costs.gpu_hour

deny contains msg if {
	input.request.kind.kind == "Pod"
	project := input.request.object.metadata.labels["apexlogic.ai/project"]
	some window, limit in data.budget_data.budgets[project]
	total := spent(project, window) + estimate
	total > limit
	msg := sprintf("budget policy: project '%v' would spend %v this %v, over its budget of %v", [project, total, window, limit])
}

deny contains msg if {
	input.request.kind.kind == "Pod"
	project := input.request.object.metadata.labels["apexlogic.ai/project"]
	not data.budget_data.budgets[project]
	msg := sprintf("budget policy: project '%v' has no budget on this device", [project])
}
