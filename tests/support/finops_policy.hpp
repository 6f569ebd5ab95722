#pragma once
// The FinOps example policy of issue 3, verbatim: shared by the engine tests, the benchmark and
// the decision-input fuzz target.
namespace edge::test {

inline constexpr const char* kFinopsPolicy = R"rego(package finops
import rego.v1
deny contains msg if {
  input.request.kind.kind == "Pod"
  project := input.request.object.metadata.labels["apexlogic.ai/project"]
  some container in input.request.object.spec.containers
  gpus := to_number(container.resources.requests["nvidia.com/gpu"])
  cost := gpus * data.finops_data.unit_costs.nvidia_gpu.hourly_rate
  cost > data.finops_data.budgets[project].gpu_hourly_limit
  msg := sprintf("FinOps policy violation for project '%v': GPU workload estimated hourly cost (%v) exceeds budget (%v).", [project, cost, data.finops_data.budgets[project].gpu_hourly_limit])
}
)rego";

}  // namespace edge::test
