#include <catch2/catch.hpp>

#include "shared/core/error.hpp"

using namespace edge;

namespace {
Result<int> inner() { return fail(SharedErrc::kNotFound, "key 'x' missing"); }
Result<int> middle() {
    auto r = inner();
    if (!r) return fail(std::move(r.error()).wrap("load state"));
    return r;
}
}  // namespace

TEST_CASE("Error: context reads outermost first and keeps the code") {
    auto r = middle();
    REQUIRE_FALSE(r);
    auto err = r.error();
    err.wrap("start daemon");
    CHECK(err.what() == "start daemon: load state: key 'x' missing");
    CHECK(err.message() == "key 'x' missing");
    CHECK(err.code() == SharedErrc::kNotFound);
    CHECK(err.code().category().name() == std::string("edge.shared"));
    CHECK(err.code().message() == "not found");
}

TEST_CASE("Error: an error without context is just its message") {
    Error e(make_error_code(SharedErrc::kIo), "disk gone");
    CHECK(e.what() == "disk gone");
}
