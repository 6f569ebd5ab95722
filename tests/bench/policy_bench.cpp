// Policy engine benchmark (issue 3): the FinOps policy prepared once and evaluated many times.
// Prints p50/p99/throughput for a 3-container pod from a parsed input and from JSON text, a
// 200-container pod, and data loading at 1k/10k/100k projects; each against a baseline in the
// same run: the same check hand-written in C++ over the same Values (what a policy engine can
// at best approach). Usage: policy_bench [iterations]
#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <vector>

#include <fmt/format.h>

#include "shared/core/clock.hpp"
#include "shared/policy/engine.hpp"
#include "tests/support/finops_policy.hpp"

namespace {

using namespace edge;
using namespace edge::policy;

const char* const kFinops = test::kFinopsPolicy;

std::string podJson(int variant, int containers) {
    std::string cs;
    for (int c = 0; c < containers; ++c) {
        if (c) cs += ",";
        cs += fmt::format(R"({{"name":"c{}","image":"registry/app:{}","resources":{{"requests":{{"nvidia.com/gpu":"{}","cpu":"2"}}}}}})",
                          c, variant % 7, (variant + c) % 5);
    }
    return fmt::format(R"({{"request":{{"kind":{{"kind":"Pod"}},"object":{{"metadata":{{"name":"pod-{}","labels":{{"apexlogic.ai/project":"project-{}"}}}},"spec":{{"containers":[{}]}}}}}}}})",
                       variant, variant % 10, cs);
}

std::string dataJson(int projects) {
    std::string budgets;
    budgets.reserve(static_cast<std::size_t>(projects) * 48);
    for (int p = 0; p < projects; ++p) {
        if (p) budgets += ",";
        budgets += fmt::format(R"("project-{}":{{"gpu_hourly_limit":{}}})", p, 4 + p % 7);
    }
    return fmt::format(R"({{"finops_data":{{"unit_costs":{{"nvidia_gpu":{{"hourly_rate":2.5}}}},"budgets":{{{}}}}}}})", budgets);
}

/// The same decision written by hand over the same Values: the baseline.
std::size_t handWritten(const Value& input, const Value& data) {
    const auto s = [](const char* k) { return Value::string(k); };
    const Value* req = input.get(s("request"));
    if (!req) return 0;
    const Value* kind = req->get(s("kind"));
    if (!kind || !kind->get(s("kind")) || !(*kind->get(s("kind")) == s("Pod"))) return 0;
    const Value* obj = req->get(s("object"));
    const Value* project = obj->get(s("metadata"))->get(s("labels"))->get(s("apexlogic.ai/project"));
    const Value* rate = data.get(s("finops_data"))->get(s("unit_costs"))->get(s("nvidia_gpu"))->get(s("hourly_rate"));
    const Value* budget = data.get(s("finops_data"))->get(s("budgets"))->get(*project);
    if (!budget) return 0;
    const double limit = budget->get(s("gpu_hourly_limit"))->asNumber().asDouble();
    std::size_t denials = 0;
    for (const auto& c : obj->get(s("spec"))->get(s("containers"))->asArray()) {
        const Value* g = c.get(s("resources"))->get(s("requests"))->get(s("nvidia.com/gpu"));
        const double cost = std::strtod(g->asString().c_str(), nullptr) * rate->asNumber().asDouble();
        if (cost > limit) {
            std::string msg = fmt::format("FinOps policy violation for project '{}': GPU workload estimated hourly cost ({}) exceeds budget ({}).",
                                          project->asString(), cost, limit);
            denials += !msg.empty();
        }
    }
    return denials;
}

struct Stats {
    double p50_us, p99_us, per_sec;
};

template <class F>
Stats measure(int iterations, F&& fn) {
    SystemClock clock;
    std::vector<double> samples;
    samples.reserve(static_cast<std::size_t>(iterations));
    const auto start = clock.steady();
    for (int i = 0; i < iterations; ++i) {
        const auto t0 = clock.steady();
        fn(i);
        samples.push_back(std::chrono::duration<double, std::micro>(clock.steady() - t0).count());
    }
    const double total_s = std::chrono::duration<double>(clock.steady() - start).count();
    std::sort(samples.begin(), samples.end());
    return {samples[samples.size() / 2], samples[samples.size() * 99 / 100], iterations / total_s};
}

void row(const char* name, const Stats& s, const Stats& base) {
    std::printf("%-34s p50 %8.2f us  p99 %8.2f us  %10.0f eval/s   (baseline p50 %6.2f us, ratio %.1fx)\n", name,
                s.p50_us, s.p99_us, s.per_sec, base.p50_us, s.p50_us / std::max(base.p50_us, 0.001));
}

}  // namespace

int main(int argc, char** argv) {
    const int iterations = argc > 1 ? std::atoi(argv[1]) : 100000;
    auto policy = Policy::compile({{"finops.rego", kFinops}});
    if (!policy) {
        std::fprintf(stderr, "compile: %s\n", policy.error().what().c_str());
        return 1;
    }
    auto query = (*policy)->prepare("data.finops.deny");
    if (!query) {
        std::fprintf(stderr, "prepare: %s\n", query.error().what().c_str());
        return 1;
    }
    const Value data = *parseJson(dataJson(10));
    std::vector<std::string> texts;
    std::vector<Value> inputs;
    for (int v = 0; v < 64; ++v) {
        texts.push_back(podJson(v, 3));
        inputs.push_back(*parseJson(texts.back()));
    }
    EvalOptions options;
    options.data = data;
    std::size_t sink = 0;
    auto check = [&](const Result<std::optional<Value>>& r) {
        if (!r || !*r) {
            std::fprintf(stderr, "eval failed: %s\n", r ? "undefined" : r.error().what().c_str());
            std::exit(1);
        }
        sink += (*r)->size();
    };

    std::printf("FinOps policy, %d evaluations per case, inputs varying over 64 pods\n", iterations);
    const Stats base3 = measure(iterations, [&](int i) { sink += handWritten(inputs[i % 64], data); });
    const Stats parsed = measure(iterations, [&](int i) {
        options.input = inputs[i % 64];
        check(query->evalValue(options));
    });
    row("3 containers, parsed input", parsed, base3);
    if (argc > 2 && std::string(argv[2]) == "--parsed-only") return 0;  // for profilers
    const Stats base_json = measure(iterations, [&](int i) { sink += handWritten(*parseJson(texts[i % 64]), data); });
    const Stats json = measure(iterations, [&](int i) {
        options.input = *parseJson(texts[i % 64]);
        check(query->evalValue(options));
    });
    row("3 containers, from JSON text", json, base_json);

    std::vector<Value> big;
    for (int v = 0; v < 8; ++v) big.push_back(*parseJson(podJson(v, 200)));
    const int big_iter = std::max(1, iterations / 50);
    const Stats base200 = measure(big_iter, [&](int i) { sink += handWritten(big[i % 8], data); });
    const Stats pod200 = measure(big_iter, [&](int i) {
        options.input = big[i % 8];
        check(query->evalValue(options));
    });
    row("200 containers, parsed input", pod200, base200);

    const Value data10k = *parseJson(dataJson(10000));
    options.data = data10k;
    const Stats base10k = measure(iterations / 10, [&](int i) { sink += handWritten(inputs[i % 64], data10k); });
    const Stats with10k = measure(iterations / 10, [&](int i) {
        options.input = inputs[i % 64];
        check(query->evalValue(options));
    });
    row("3 containers, 10,000 projects", with10k, base10k);

    std::printf("data load (JSON text -> engine values):\n");
    double per_project_1k = 0;
    for (int n : {1000, 10000, 100000}) {
        const std::string text = dataJson(n);
        const Stats load = measure(n >= 100000 ? 5 : 20, [&](int) { sink += parseJson(text)->size(); });
        const double per = load.p50_us / n;
        if (n == 1000) per_project_1k = per;
        std::printf("  %6d projects: %9.1f us (p50), %.3f us per project, %.2fx the per-project cost at 1,000\n", n,
                    load.p50_us, per, per / per_project_1k);
    }
    std::printf("targets: 3 containers p50 <= 5 us, p99 <= 20 us parsed; p50 <= 10 us from JSON; 200 containers <= 500 us\n");
    std::printf("(checksum %zu)\n", sink);
    return 0;
}
