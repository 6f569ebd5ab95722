#include "controlplane/stream_store.hpp"

#include <catch2/catch.hpp>
#include <chrono>
#include <string>
#include <vector>

#include "edged/durable_queue.hpp"
#include "edged/group_writer.hpp"
#include "shared/loop/asio/asio_event_loop.hpp"
#include "shared/store/lmdb/lmdb_store.hpp"
#include "shared/telemetry/record_chain.hpp"
#include "tests/support/temp_dir.hpp"

using namespace edge;
using nlohmann::json;

namespace {

/// Records seq first..last chained the way a device chains them; prev of the first is given.
std::vector<json> makeChain(std::uint64_t first, std::uint64_t last, std::string prev = "",
                            std::string tag = "a") {
    std::vector<json> out;
    for (std::uint64_t seq = first; seq <= last; ++seq) {
        json r = {{"seq", seq}, {"prev", prev}, {"tag", tag}, {"value", seq * 10}};
        r["hash"] = chain::recordHash(r);
        prev = r["hash"];
        out.push_back(std::move(r));
    }
    return out;
}

std::vector<json> slice(const std::vector<json>& records, std::uint64_t first, std::uint64_t last) {
    return {records.begin() + static_cast<long>(first - 1),
            records.begin() + static_cast<long>(last)};
}

std::string payload(const std::vector<json>& records, std::uint64_t dropped = 0,
                    std::string device = "dev-1", std::string stream = "decisions") {
    return json{{"device", device}, {"stream", stream}, {"dropped", dropped}, {"records", records}}
        .dump();
}

std::string recordKey(std::string_view prefix, std::uint64_t seq) {
    std::string key(prefix);
    for (int shift = 56; shift >= 0; shift -= 8) key.push_back(char((seq >> shift) & 0xff));
    return key;
}

struct Rig {
    test::TempDir dir;
    std::unique_ptr<store::LmdbStore> store = std::move(*store::LmdbStore::open(dir / "db"));
    controlplane::StreamStore streams{*store};

    std::uint64_t ingest(const std::string& body, std::string_view device = "dev-1",
                         std::string_view stream = "decisions") {
        auto acked = streams.ingest(device, stream, body);
        INFO((acked ? std::string() : acked.error().what()));
        REQUIRE(acked);
        return *acked;
    }
    Error rejected(const std::string& body, std::string_view device = "dev-1",
                   std::string_view stream = "decisions") {
        auto acked = streams.ingest(device, stream, body);
        REQUIRE_FALSE(acked);
        return acked.error();
    }
    std::vector<json> list(std::string_view device = "dev-1", std::string_view stream = "decisions",
                           std::uint64_t after = 0, std::size_t limit = 1000) {
        auto got = streams.list(device, stream, after, limit);
        REQUIRE(got);
        return *got;
    }
    controlplane::ChainReport verify(std::string_view device = "dev-1",
                                     std::string_view stream = "decisions") {
        auto report = streams.verify(device, stream);
        REQUIRE(report);
        return *report;
    }
    void overwrite(std::uint64_t seq, const json& record) {
        REQUIRE(store->write([&](store::WriteTxn& txn) {
            return txn.put("stream_records", recordKey("dev-1/decisions/", seq), record.dump());
        }));
    }
    json meta(std::string_view key = "dev-1/decisions") {
        std::optional<std::string> text;
        REQUIRE(store->read([&](const store::ReadTxn& txn) -> Status {
            auto got = txn.get("stream_meta", key);
            if (!got) return fail(got.error());
            text = *got;
            return {};
        }));
        REQUIRE(text);
        return json::parse(*text);
    }
};

std::string problems(const controlplane::ChainReport& report) {
    return controlplane::toJson(report)["problems"].dump();
}

}  // namespace

TEST_CASE("StreamStore: a batch is stored once, receiving it again stores nothing new",
          "[stream]") {
    Rig rig;
    const auto chain = makeChain(1, 8);
    CHECK(rig.ingest(payload(slice(chain, 1, 5))) == 5);
    CHECK(rig.list() == slice(chain, 1, 5));
    CHECK(rig.ingest(payload(slice(chain, 1, 5))) == 5);  // a retransmission
    CHECK(rig.list().size() == 5);
    CHECK(rig.meta() == json{{"dropped_reported", 0}, {"records", 5}, {"last_seq", 5}});

    CHECK(rig.ingest(payload(slice(chain, 4, 8))) == 8);  // overlaps what is stored
    CHECK(rig.list() == chain);
    CHECK(rig.meta()["records"] == 8);
    CHECK(rig.list("dev-1", "decisions", 6, 1) == slice(chain, 7, 7));
    CHECK(rig.list("dev-1", "telemetry").empty());

    auto report = rig.verify();
    INFO(problems(report));
    CHECK(report.verified);
    CHECK(report.records == 8);
    CHECK(report.first_seq == 1);
    CHECK(report.last_seq == 8);
    CHECK(report.gaps.empty());

    SECTION("a batch without records acknowledges nothing but records drops") {
        CHECK(rig.ingest(payload({}, 4)) == 0);
        CHECK(rig.verify().dropped_reported == 4);
        CHECK(rig.ingest(payload({}, 2)) == 0);  // the highest count reported stays
        CHECK(rig.verify().dropped_reported == 4);
    }
}

TEST_CASE("StreamStore: a forged record is rejected and nothing of its batch is stored",
          "[stream]") {
    Rig rig;
    auto chain = makeChain(1, 3);
    SECTION("content edited, hash kept") {
        chain[1]["value"] = 999;
        auto err = rig.rejected(payload(chain));
        CHECK(err.code() == SharedErrc::kInvalidArgument);
        CHECK_THAT(err.what(), Catch::Contains("seq 2: hash does not match"));
    }
    SECTION("link forged, hash recomputed") {
        chain[1]["prev"] = std::string(64, '0');
        chain[1]["hash"] = chain::recordHash(chain[1]);
        auto err = rig.rejected(payload(chain));
        CHECK(err.code() == SharedErrc::kInvalidArgument);
        CHECK_THAT(err.what(), Catch::Contains("seq 2: prev does not match hash of seq 1"));
    }
    SECTION("seqs out of order") {
        std::swap(chain[1], chain[2]);
        CHECK(rig.rejected(payload(chain)).code() == SharedErrc::kInvalidArgument);
    }
    SECTION("a record without its chain members") {
        chain[2].erase("prev");
        CHECK(rig.rejected(payload(chain)).code() == SharedErrc::kParse);
    }
    CHECK(rig.list().empty());
    CHECK(rig.verify().records == 0);
}

TEST_CASE("StreamStore: a batch for another device or stream, or not a batch, is rejected",
          "[stream]") {
    Rig rig;
    const auto chain = makeChain(1, 2);
    auto err = rig.rejected(payload(chain, 0, "dev-2"));
    CHECK(err.code() == SharedErrc::kInvalidArgument);
    CHECK_THAT(err.what(), Catch::Contains("payload is for device 'dev-2', not 'dev-1'"));
    CHECK(rig.rejected(payload(chain, 0, "dev-1", "telemetry")).code() ==
          SharedErrc::kInvalidArgument);
    CHECK(rig.rejected(payload(chain, 0, "dev-1", "audit"), "dev-1", "audit").code() ==
          SharedErrc::kInvalidArgument);
    CHECK(rig.rejected(payload(chain, 0, "../x"), "../x").code() == SharedErrc::kInvalidArgument);
    CHECK(rig.rejected(payload(chain, 0, std::string(65, 'd')), std::string(65, 'd')).code() ==
          SharedErrc::kInvalidArgument);
    CHECK(rig.rejected("{not json").code() == SharedErrc::kParse);
    CHECK(rig.rejected("[]").code() == SharedErrc::kParse);
    CHECK(rig.rejected(R"({"device":"dev-1","stream":"decisions","dropped":0,"records":{}})")
              .code() == SharedErrc::kParse);
    CHECK(rig.rejected(R"({"device":"dev-1","stream":"decisions","dropped":-1,"records":[]})")
              .code() == SharedErrc::kParse);
    CHECK(rig.list().empty());
    CHECK_FALSE(rig.streams.list("dev/1", "decisions", 0, 10));
    CHECK_FALSE(rig.streams.verify("dev-1", "audit"));
}

TEST_CASE("StreamStore: a gap verifies only when the device reported enough drops", "[stream]") {
    Rig rig;
    const auto chain = makeChain(1, 10);
    SECTION("gap covered by drops") {
        rig.ingest(payload(slice(chain, 1, 3)));
        CHECK(rig.ingest(payload(slice(chain, 7, 10), 3)) == 10);  // 4..6 dropped on the device
        auto report = rig.verify();
        INFO(problems(report));
        CHECK(report.verified);
        CHECK(report.records == 7);
        CHECK(report.dropped_reported == 3);
        CHECK(report.gaps == std::vector<std::pair<std::uint64_t, std::uint64_t>>{{4, 6}});
        CHECK(controlplane::toJson(report)["gaps"] == json::parse("[[4,6]]"));
    }
    SECTION("gap without drops") {
        rig.ingest(payload(slice(chain, 1, 3)));
        rig.ingest(payload(slice(chain, 7, 10), 2));
        auto report = rig.verify();
        CHECK_FALSE(report.verified);
        CHECK(report.gaps.size() == 1);
        CHECK_THAT(problems(report), Catch::Contains("3 records missing"));
    }
    SECTION("a late record filling the gap must link to both neighbours") {
        rig.ingest(payload(slice(chain, 1, 3)));
        rig.ingest(payload(slice(chain, 5, 10), 1));
        auto other = makeChain(4, 4, chain[2]["hash"], "other");  // links back, not forward
        auto err = rig.rejected(payload(other));
        CHECK_THAT(err.what(), Catch::Contains("stored seq 5 does not link to it"));
        CHECK(rig.ingest(payload(slice(chain, 4, 4))) == 4);
        auto report = rig.verify();
        CHECK(report.verified);
        CHECK(report.gaps.empty());
    }
}

TEST_CASE("StreamStore: verify detects a record edited in the store", "[stream]") {
    Rig rig;
    const auto chain = makeChain(1, 5);
    rig.ingest(payload(chain));
    REQUIRE(rig.verify().verified);
    SECTION("hash left alone") {
        auto edited = chain[2];
        edited["value"] = 0;
        rig.overwrite(3, edited);
        auto report = rig.verify();
        CHECK_FALSE(report.verified);
        CHECK_THAT(problems(report), Catch::Contains("seq 3: hash does not match"));
    }
    SECTION("hash recomputed") {
        auto edited = chain[2];
        edited["value"] = 0;
        edited["hash"] = chain::recordHash(edited);
        rig.overwrite(3, edited);
        auto report = rig.verify();
        CHECK_FALSE(report.verified);
        CHECK(report.problems ==
              std::vector<std::string>{"seq 4: prev does not match hash of seq 3"});
    }
    SECTION("not JSON any more") {
        REQUIRE(rig.store->write([&](store::WriteTxn& txn) {
            return txn.put("stream_records", recordKey("dev-1/decisions/", 2), "garbage");
        }));
        CHECK_THAT(problems(rig.verify()), Catch::Contains("seq 2: stored record is not JSON"));
        CHECK_FALSE(rig.streams.list("dev-1", "decisions", 0, 10));
    }
}

TEST_CASE("StreamStore: a record conflicting with a stored one is rejected", "[stream]") {
    Rig rig;
    const auto chain = makeChain(1, 3);
    rig.ingest(payload(chain, 0));
    const auto other = makeChain(1, 4, "", "b");  // another history for the same seqs
    auto err = rig.rejected(payload(other));
    CHECK(err.code() == SharedErrc::kInvalidArgument);
    CHECK_THAT(err.what(), Catch::Contains("seq 1: conflicting record"));
    err = rig.rejected(payload(slice(other, 4, 4)));
    CHECK_THAT(err.what(), Catch::Contains("seq 4: prev does not match hash of stored seq 3"));
    CHECK(rig.list() == chain);
    CHECK(rig.verify().verified);
}

TEST_CASE("StreamStore: streams of different devices stay apart", "[stream]") {
    Rig rig;
    const auto a = makeChain(1, 3, "", "a");
    const auto b = makeChain(1, 2, "", "b");
    rig.ingest(payload(a, 0, "dev-1"), "dev-1");
    rig.ingest(payload(b, 0, "dev-1.x"), "dev-1.x");  // '.' sorts before '/'
    rig.ingest(payload(b, 0, "dev-10"), "dev-10");    // '0' sorts after '/'
    rig.ingest(payload(b, 5, "dev-1", "telemetry"), "dev-1", "telemetry");
    CHECK(rig.list("dev-1") == a);
    CHECK(rig.list("dev-1.x") == b);
    CHECK(rig.list("dev-10") == b);
    CHECK(rig.list("dev-1", "telemetry") == b);
    CHECK(rig.verify("dev-1").records == 3);
    CHECK(rig.verify("dev-1").dropped_reported == 0);
    CHECK(rig.verify("dev-1", "telemetry").dropped_reported == 5);
    CHECK(rig.verify("dev-2").records == 0);
    CHECK(rig.verify("dev-2").verified);
}

TEST_CASE("StreamStore: a device queue's records, with drops and acks, verify", "[stream][queue]") {
    test::TempDir dir;
    auto device_store = std::move(*store::LmdbStore::open(dir / "device"));
    AsioEventLoop loop;
    edged::GroupWriter writer(*device_store, loop);
    edged::DurableQueue queue(*device_store, writer, {.name = "telemetry", .max_bytes = 3000});
    REQUIRE(queue.load());
    Rig cp;
    auto settle = [&] {
        const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(20);
        loop.context().restart();
        while (!queue.idle() && std::chrono::steady_clock::now() < deadline) {
            loop.context().run_one_for(std::chrono::milliseconds(5));
        }
        REQUIRE(queue.idle());
    };
    auto send = [&] {  // what edged's uploader does: read, post, ack what was stored
        auto batch = queue.readCommitted(queue.acked(), 8, 1 << 20);
        REQUIRE(batch);
        REQUIRE_FALSE(batch->empty());
        std::vector<json> records;
        for (const auto& [seq, text] : *batch) records.push_back(json::parse(text));
        queue.ack(cp.ingest(payload(records, queue.dropped(), "dev-1", "telemetry"), "dev-1",
                            "telemetry"));
        settle();
    };
    for (int i = 0; i < 5; ++i) queue.append({{"i", i}});
    settle();
    send();
    for (int i = 5; i < 60; ++i) queue.append({{"i", i}, {"pad", std::string(40, 'p')}});
    settle();
    CHECK(queue.dropped() > 0);
    while (queue.acked() < queue.committedSeq()) send();
    auto report = cp.verify("dev-1", "telemetry");
    INFO(problems(report));
    CHECK(report.verified);
    CHECK(report.last_seq == 60);
    CHECK(report.dropped_reported == queue.dropped());
    CHECK(report.gaps.size() == 1);
}
