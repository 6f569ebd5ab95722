// Fuzz target: decision inputs as JSON text (what edged's decision API receives), evaluated
// by the FinOps example policy.
#include <cstddef>
#include <cstdint>
#include <string_view>

#include "shared/policy/engine.hpp"
#include "tests/support/finops_policy.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    using namespace edge::policy;
    static const auto query = [] {
        auto policy = Policy::compile({{"finops.rego", edge::test::kFinopsPolicy}});
        return *(*policy)->prepare("data.finops.deny");
    }();
    static const Value kData = *parseJson(
        R"({"finops_data": {"unit_costs": {"nvidia_gpu": {"hourly_rate": 2.5}}, "budgets": {"a": {"gpu_hourly_limit": 1}}}})");
    auto input = parseJson(std::string_view(reinterpret_cast<const char*>(data), size));
    if (!input) return 0;
    EvalOptions options;
    options.data = kData;
    options.input = *input;
    options.max_steps = 100000;
    (void)query.evalValue(options);
    return 0;
}
