// Decision API benchmark (issue 4): admission decisions for the FinOps policy, layer by layer,
// all in the same run so each layer is compared with the one below it:
//   1. engine      the prepared FinOps query over a parsed input (the floor)
//   2. service     DecisionService::admit on the JSON body: parse, data.edge, eval, metering
//                  read, decision-log append with group commits to a real LMDB file
//   3. socket      the real edged process, HTTP over its Unix socket with keep-alive, from a
//                  minimal blocking client: one connection (latency) and four (throughput);
//                  "per core" is decisions per CPU-second the daemon used (all its threads)
// Usage: decision_bench [decisions]   (default 20000; run from the build tree)
#include <algorithm>
#include <atomic>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <thread>
#include <vector>

#include <sched.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <sstream>

#include <fmt/format.h>

#include "edged/decision_service.hpp"
#include "edged/durable_queue.hpp"
#include "edged/group_writer.hpp"
#include "edged/metering.hpp"
#include "edged/policy_sets.hpp"
#include "security/bundle_signing.hpp"
#include "security/trust_root.hpp"
#include "shared/core/fs.hpp"
#include "shared/http/http.hpp"
#include "shared/loop/asio/asio_event_loop.hpp"
#include "shared/store/lmdb/lmdb_store.hpp"
#include "tests/support/finops_policy.hpp"
#include "tests/support/process.hpp"
#include "tests/support/temp_dir.hpp"

namespace {

using namespace edge;
using Clock_ = std::chrono::steady_clock;

std::string podJson(int variant) {
    return fmt::format(
        R"({{"request":{{"kind":{{"kind":"Pod"}},"object":{{"metadata":{{"name":"pod-{}","labels":{{"apexlogic.ai/project":"project-{}"}}}},"spec":{{"containers":[{{"name":"a","resources":{{"requests":{{"nvidia.com/gpu":"{}","cpu":"2"}}}}}},{{"name":"b","resources":{{"requests":{{"nvidia.com/gpu":"{}"}}}}}},{{"name":"c","resources":{{"requests":{{"cpu":"1"}}}}}}]}}}}}}}})",
        variant, variant % 10, variant % 5, (variant + 1) % 3);
}

bundle::Bundle finopsBundle() {
    bundle::Bundle b;
    b.device_id = "bench-1";
    b.version = 1;
    b.issued_at = std::time(nullptr) - 10;
    b.expires_at = std::time(nullptr) + 86400;
    b.source = "bench";
    b.policies["finops.rego"] = test::kFinopsPolicy;
    nlohmann::json budgets = nlohmann::json::object();
    for (int p = 0; p < 10; ++p) budgets[fmt::format("project-{}", p)] = {{"gpu_hourly_limit", 4 + p % 7}};
    b.data = {{"finops_data", {{"unit_costs", {{"nvidia_gpu", {{"hourly_rate", 2.5}}}}}, {"budgets", budgets}}}};
    b.enforcement.entrypoints = {"data.finops.deny"};
    return b;
}

struct Figures {
    double p50_us = 0, p99_us = 0, per_second = 0;
};

Figures summarize(std::vector<double> us, double wall_seconds) {
    std::sort(us.begin(), us.end());
    Figures f;
    f.p50_us = us[us.size() / 2];
    f.p99_us = us[us.size() * 99 / 100];
    f.per_second = static_cast<double>(us.size()) / wall_seconds;
    return f;
}

void print(const char* name, const Figures& f, const Figures& base) {
    std::printf("%-34s p50 %8.1f us  p99 %8.1f us  %9.0f /s   p50 x%.2f of engine\n", name, f.p50_us,
                f.p99_us, f.per_second, f.p50_us / base.p50_us);
}

/// The thinnest keep-alive HTTP/1.1 client over a Unix socket: blocking write and read, as an
/// OPA client in Go or curl would do, so the figures are the daemon's and not a client
/// library's. Returns the status, or -1 on a transport error.
class RawClient {
public:
    explicit RawClient(const std::filesystem::path& path) {
        fd_ = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
        sockaddr_un addr{};
        addr.sun_family = AF_UNIX;
        std::snprintf(addr.sun_path, sizeof(addr.sun_path), "%s", path.c_str());
        if (::connect(fd_, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0) {
            ::close(fd_);
            fd_ = -1;
        }
    }
    ~RawClient() {
        if (fd_ >= 0) ::close(fd_);
    }
    RawClient(const RawClient&) = delete;
    RawClient& operator=(const RawClient&) = delete;
    bool ok() const { return fd_ >= 0; }

    int post(const std::string& target, const std::string& body) {
        request_ = fmt::format("POST {} HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\n"
                               "Content-Length: {}\r\n\r\n{}",
                               target, body.size(), body);
        for (std::size_t sent = 0; sent < request_.size();) {
            const ssize_t n = ::write(fd_, request_.data() + sent, request_.size() - sent);
            if (n <= 0) return -1;
            sent += static_cast<std::size_t>(n);
        }
        // Read the head, then exactly Content-Length bytes of body.
        std::size_t head_end = std::string::npos;
        while ((head_end = buffer_.find("\r\n\r\n")) == std::string::npos) {
            if (!fill()) return -1;
        }
        const auto cl = buffer_.find("Content-Length: ");
        if (cl == std::string::npos || cl > head_end) return -1;
        const std::size_t length = std::strtoull(buffer_.c_str() + cl + 16, nullptr, 10);
        while (buffer_.size() < head_end + 4 + length) {
            if (!fill()) return -1;
        }
        const int status = std::atoi(buffer_.c_str() + 9);
        buffer_.erase(0, head_end + 4 + length);
        return status;
    }

private:
    bool fill() {
        char chunk[16384];
        const ssize_t n = ::read(fd_, chunk, sizeof(chunk));
        if (n <= 0) return false;
        buffer_.append(chunk, static_cast<std::size_t>(n));
        return true;
    }
    int fd_ = -1;
    std::string request_;
    std::string buffer_;
};

/// CPU seconds (user + system, all threads) a process has used so far.
double cpuSeconds(pid_t pid) {
    const auto stat = test::readFile(fmt::format("/proc/{}/stat", pid));
    const auto close = stat.rfind(')');
    if (close == std::string::npos) return 0;
    std::istringstream in(stat.substr(close + 2));
    std::string field;
    unsigned long long utime = 0, stime = 0;
    for (int i = 3; i <= 15 && in >> field; ++i) {
        if (i == 14) utime = std::stoull(field);
        if (i == 15) stime = std::stoull(field);
    }
    return static_cast<double>(utime + stime) / static_cast<double>(sysconf(_SC_CLK_TCK));
}

void pin(int cpu) {
    cpu_set_t set;
    CPU_ZERO(&set);
    CPU_SET(cpu, &set);
    (void)sched_setaffinity(0, sizeof(set), &set);
}

}  // namespace

int main(int argc, char** argv) {
    const int n = argc > 1 ? std::atoi(argv[1]) : 20000;
    test::TempDir dir;
    const auto b = finopsBundle();
    std::vector<std::string> bodies;
    for (int i = 0; i < 64; ++i) bodies.push_back(podJson(i));

    // 1. engine only
    auto sets = edged::PolicySets::build(b);
    if (!sets) {
        std::fprintf(stderr, "compile: %s\n", sets.error().what().c_str());
        return 1;
    }
    std::vector<policy::Value> inputs;
    for (const auto& body : bodies) inputs.push_back(*policy::parseJson(body));
    Figures engine;
    {
        const auto& query = (*sets)->main->entrypoints.front().second;
        std::vector<double> us;
        us.reserve(static_cast<std::size_t>(n));
        const auto start = Clock_::now();
        for (int i = 0; i < n; ++i) {
            const auto t0 = Clock_::now();
            policy::EvalOptions options;
            options.input = inputs[static_cast<std::size_t>(i) % inputs.size()];
            options.data = (*sets)->data;
            auto v = query.evalValue(options);
            if (!v) return 1;
            us.push_back(std::chrono::duration<double, std::micro>(Clock_::now() - t0).count());
        }
        engine = summarize(std::move(us), std::chrono::duration<double>(Clock_::now() - start).count());
    }

    // 2. the decision service, no HTTP: real LMDB, group commits on the writer thread
    Figures service;
    std::uint64_t commits = 0;
    {
        auto store = store::LmdbStore::open(dir / "svc-db");
        if (!store) return 1;
        AsioEventLoop loop;
        SystemClock clock;
        edged::GroupWriter writer(**store, loop, std::chrono::milliseconds(10));  // edged's default
        edged::DurableQueue decisions(**store, writer, {"decisions", 256u << 20});
        edged::DurableQueue telemetry(**store, writer, {"telemetry", 16u << 20});
        edged::Meter meter(**store, writer, clock);
        if (!decisions.load() || !telemetry.load() || !meter.load()) return 1;
        edged::DecisionService svc(clock, meter, decisions, telemetry, {"bench-1", {}, {}}, {});
        svc.setPolicies(*sets);
        std::vector<double> us;
        us.reserve(static_cast<std::size_t>(n));
        const auto start = Clock_::now();
        for (int i = 0; i < n; ++i) {
            const auto t0 = Clock_::now();
            auto response = svc.admit(bodies[static_cast<std::size_t>(i) % bodies.size()]);
            us.push_back(std::chrono::duration<double, std::micro>(Clock_::now() - t0).count());
            if (response.status != 200) return 1;
            loop.context().poll();  // commit completions, as the daemon's loop runs them
        }
        service = summarize(std::move(us), std::chrono::duration<double>(Clock_::now() - start).count());
        while (!decisions.idle()) {  // the last commits, and their completions
            writer.flush();
            loop.context().poll();
        }
        commits = writer.transactions();
        std::printf("decision log: %llu decisions in %llu group commits (%.0f per commit), all committed: %s\n",
                    static_cast<unsigned long long>(decisions.headSeq()),
                    static_cast<unsigned long long>(commits),
                    static_cast<double>(decisions.headSeq()) / static_cast<double>(std::max<std::uint64_t>(commits, 1)),
                    decisions.committedSeq() == decisions.headSeq() ? "yes" : "no");
    }

    // 3. the real daemon over its Unix socket
    auto key = *security::PrivateKey::generate(security::Algorithm::kEd25519);
    const auto root = security::TrustRoot::create({key.publicKey()}, 1);
    (void)fs::writeFileAtomic(dir / "trust-root.json", root.toJson());
    (void)fs::writeFileAtomic(dir / "bundle.jws", *security::signBundle(b, {key}));
    (void)fs::writeFileAtomic(dir / "edged.yaml",
                              "device_id: bench-1\ntrust_root: trust-root.json\nstate_dir: state\n"
                              "log_level: warn\napi:\n  socket: edged.sock\n");
    const auto edged = std::filesystem::path(EDGE_TEST_BIN_DIR) / "edged";
    auto applied = test::runCommand({edged.string(), "apply", "-c", (dir / "edged.yaml").string(),
                                     (dir / "bundle.jws").string()});
    if (applied.exit_code != 0) {
        std::fprintf(stderr, "edged apply: %s\n", applied.err.c_str());
        return 1;
    }
    // EDGE_BENCH_PIN=1 pins the daemon (loop and writer threads) to core 0 and the clients to
    // core 1; by default the scheduler places them, and "per core" is measured as the daemon's
    // own CPU time (/proc/<pid>/stat) instead.
    const bool pinned = std::getenv("EDGE_BENCH_PIN") != nullptr;
    std::vector<std::string> command = {edged.string(), "run", "-c", (dir / "edged.yaml").string()};
    if (pinned) command.insert(command.begin(), {"taskset", "-c", "0"});
    auto daemon = test::Process::spawn(command, dir / "edged.log");
    if (pinned) pin(1);
    // The daemon is up once its socket answers (through the project's own client).
    test::waitUntil([&] { return http::UnixConnection::open(dir / "edged.sock").has_value(); },
                    std::chrono::seconds(10));
    auto conn = std::make_unique<RawClient>(dir / "edged.sock");
    if (!conn->ok()) {
        std::fprintf(stderr, "edged did not start: %s\n", test::readFile(dir / "edged.log").c_str());
        return 1;
    }
    for (int i = 0; i < 1000; ++i) (void)conn->post("/v1/admit", bodies[static_cast<std::size_t>(i) % bodies.size()]);
    Figures socket1;
    {
        std::vector<double> us;
        us.reserve(static_cast<std::size_t>(n));
        const auto start = Clock_::now();
        for (int i = 0; i < n; ++i) {
            const auto t0 = Clock_::now();
            const int status = conn->post("/v1/admit", bodies[static_cast<std::size_t>(i) % bodies.size()]);
            us.push_back(std::chrono::duration<double, std::micro>(Clock_::now() - t0).count());
            if (status != 200) return 1;
        }
        socket1 = summarize(std::move(us), std::chrono::duration<double>(Clock_::now() - start).count());
    }
    const double cpu_before = cpuSeconds(daemon.pid());
    Figures socket4;
    {
        constexpr int kClients = 4;
        std::vector<std::vector<double>> per(kClients);
        std::atomic<bool> failed{false};
        const auto start = Clock_::now();
        std::vector<std::thread> threads;
        for (int c = 0; c < kClients; ++c) {
            threads.emplace_back([&, c] {
                if (pinned) pin(1);
                RawClient cc(dir / "edged.sock");
                if (!cc.ok()) return void(failed = true);
                per[c].reserve(static_cast<std::size_t>(n / kClients));
                for (int i = 0; i < n / kClients; ++i) {
                    const auto t0 = Clock_::now();
                    const int status = cc.post("/v1/admit", bodies[static_cast<std::size_t>(i + c) % bodies.size()]);
                    per[c].push_back(std::chrono::duration<double, std::micro>(Clock_::now() - t0).count());
                    if (status != 200) return void(failed = true);
                }
            });
        }
        for (auto& t : threads) t.join();
        if (failed) return 1;
        std::vector<double> all;
        for (auto& v : per) all.insert(all.end(), v.begin(), v.end());
        socket4 = summarize(std::move(all), std::chrono::duration<double>(Clock_::now() - start).count());
    }
    const double daemon_cpu = cpuSeconds(daemon.pid()) - cpu_before;
    daemon.signal(SIGTERM);
    (void)daemon.wait(std::chrono::seconds(10));

    std::printf("FinOps admission decisions, %d per layer (3-container pods)\n", n);
    print("engine (prepared query)", engine, engine);
    print("service (parse+eval+meter+log)", service, engine);
    print("socket, 1 keep-alive connection", socket1, engine);
    print("socket, 4 connections", socket4, engine);
    const double per_core = daemon_cpu > 0 ? (n / 4 * 4) / daemon_cpu : 0;
    std::printf("edged CPU during the 4-connection run: %.2f s for %d decisions = %.0f decisions per CPU-second\n",
                daemon_cpu, n / 4 * 4, per_core);
    std::printf("targets: socket p99 <= 200 us: %s (%.1f us); >= 20000 decisions/s on one core: %s (%.0f per edged CPU-second)\n",
                socket1.p99_us <= 200 ? "met" : "MISSED", socket1.p99_us,
                per_core >= 20000 ? "met" : "MISSED", per_core);
    return 0;
}
