// Fuzz target: requests to edged's decision API, as DecisionService::handle receives them from
// the HTTP server. The first line of the input is "<METHOD> <path>", the rest is the body.
// Every request must end in a response (any status), never a crash, a hang or an exception.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string_view>

#include "edged/decision_service.hpp"
#include "edged/group_writer.hpp"
#include "shared/core/log.hpp"
#include "shared/loop/asio/asio_event_loop.hpp"
#include "shared/store/lmdb/lmdb_store.hpp"
#include "tests/support/finops_policy.hpp"

namespace {

using namespace edge;

struct Daemon {
    Daemon() {
        char tmpl[] = "/tmp/decision-api-fuzz-XXXXXX";
        if (mkdtemp(tmpl) == nullptr) std::abort();
        dir = tmpl;
        store = std::move(*store::LmdbStore::open(dir / "db"));
        writer = std::make_unique<edged::GroupWriter>(*store, loop);
        decisions = std::make_unique<edged::DurableQueue>(*store, *writer, edged::QueueOptions{"decisions", 1u << 20});
        telemetry = std::make_unique<edged::DurableQueue>(*store, *writer, edged::QueueOptions{"telemetry", 1u << 20});
        meter = std::make_unique<edged::Meter>(*store, *writer, clock);
        if (!decisions->load() || !telemetry->load() || !meter->load()) std::abort();
        service = std::make_unique<edged::DecisionService>(clock, *meter, *decisions, *telemetry,
                                                           edged::DeviceInfo{"fuzz-1", {{"site", "lab"}}, {}},
                                                           edged::DecisionSettings{std::chrono::milliseconds(50)});
        bundle::Bundle b;
        b.device_id = "fuzz-1";
        b.version = 1;
        b.policies["finops.rego"] = test::kFinopsPolicy;
        b.data = {{"finops_data",
                   {{"unit_costs", {{"nvidia_gpu", {{"hourly_rate", 2.5}}}}},
                    {"budgets", {{"vision", {{"gpu_hourly_limit", 10}}}}}}}};
        b.enforcement.log_input = true;
        service->setPolicies(*edged::PolicySets::build(b));
    }
    ~Daemon() {
        service.reset();
        meter.reset();
        telemetry.reset();
        decisions.reset();
        writer.reset();
        store.reset();
        std::error_code ignored;
        std::filesystem::remove_all(dir, ignored);
    }
    std::filesystem::path dir;
    AsioEventLoop loop;
    SystemClock clock;
    std::unique_ptr<store::LmdbStore> store;
    std::unique_ptr<edged::GroupWriter> writer;
    std::unique_ptr<edged::DurableQueue> decisions, telemetry;
    std::unique_ptr<edged::Meter> meter;
    std::unique_ptr<edged::DecisionService> service;
};

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    static bool quiet = (log::init("fuzz", log::Level::kError), true);
    (void)quiet;
    static Daemon daemon;
    const std::string_view text(reinterpret_cast<const char*>(data), size);
    const auto eol = text.find('\n');
    const auto head = text.substr(0, eol);
    const auto space = head.find(' ');
    http::Request request;
    request.method = std::string(head.substr(0, space));
    request.path = space == std::string_view::npos ? "/v1/admit" : std::string(head.substr(space + 1));
    request.body = eol == std::string_view::npos ? std::string{} : std::string(text.substr(eol + 1));
    const auto response = daemon.service->handle(request);
    if (response.status < 200 || response.status > 599) std::abort();
    daemon.loop.context().poll();
    return 0;
}
