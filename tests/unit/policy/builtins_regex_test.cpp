#include <catch2/catch.hpp>
#include <chrono>

#include "tests/unit/policy/builtin_call.hpp"

using namespace edge::policy;
using namespace edge::policy::test;

namespace {

bool globMatch(const char* pattern, Value delimiters, const char* subject) {
    const Value v = eval("glob.match", {str(pattern), std::move(delimiters), str(subject)});
    REQUIRE(v.isBool());
    return v.asBool();
}

}  // namespace

TEST_CASE("regex.match: unanchored search with Go syntax") {
    CHECK(eval("regex.match", {str("^[a-z]+\\[[0-9]+\\]$"), str("foo[1]")}) ==
          Value::boolean(true));
    CHECK(eval("regex.match", {str("^$"), str("")}) == Value::boolean(true));
    CHECK(eval("regex.match", {str(""), str("x")}) == Value::boolean(true));
    CHECK(eval("regex.match", {str("^$"), str("something")}) == Value::boolean(false));
    CHECK(eval("regex.match", {str("(?i)ABC"), str("xabcx")}) == Value::boolean(true));
    CHECK(eval("regex.match", {str("\\pL+"), str("åäö")}) == Value::boolean(true));
}

TEST_CASE("regex.match: an invalid pattern is a builtin error with Go's text") {
    const auto msg = failure(PolicyErrc::kBuiltinError, "regex.match", {str("$^[[["), str("x")});
    CHECK(msg == "regex.match: error parsing regexp: missing closing ]: `[[[`");
    CHECK_THAT(failure(PolicyErrc::kBuiltinError, "regex.match", {str("a**"), str("x")}),
               Catch::Contains("invalid nested repetition operator"));
    CHECK(failure(PolicyErrc::kTypeError, "regex.match", {num(1), str("x")}) ==
          "regex.match: operand 1 must be string but got number");
}

TEST_CASE("regex: a pathological pattern runs in linear time") {
    const std::string subject(100'000, 'a');
    const auto start = std::chrono::steady_clock::now();
    CHECK(eval("regex.match", {str("(a*)*b"), str(subject)}) == Value::boolean(false));
    CHECK(eval("regex.match", {str("^(a|aa)+$"), str(subject + "!")}) == Value::boolean(false));
    CHECK(eval("regex.find_n", {str("(x+x+)+y"), str(std::string(5'000, 'x')), num(-1)}) ==
          Value::emptyArray());
    CHECK(std::chrono::steady_clock::now() - start < std::chrono::seconds(2));
}

TEST_CASE("regex.is_valid: false for bad patterns and non-strings") {
    CHECK(eval("regex.is_valid", {str(".+")}) == Value::boolean(true));
    CHECK(eval("regex.is_valid", {str("++")}) == Value::boolean(false));
    CHECK(eval("regex.is_valid", {num(10)}) == Value::boolean(false));
}

TEST_CASE("regex.find_n: n limits the matches, -1 finds all, anchors hold") {
    CHECK(eval("regex.find_n", {str("a."), str("paranormal"), num(-1)}) ==
          strs({"ar", "an", "al"}));
    CHECK(eval("regex.find_n", {str("a."), str("paranormal"), num(2)}) == strs({"ar", "an"}));
    CHECK(eval("regex.find_n", {str("a."), str("paranormal"), num(0)}) == Value::emptyArray());
    CHECK(eval("regex.find_n", {str("^a."), str("abacadaeaf"), num(-1)}) == strs({"ab"}));
    CHECK(eval("regex.find_n", {str(".$"), str("abacadaeaf"), num(-1)}) == strs({"f"}));
    CHECK(eval("regex.find_n", {str("[abcdef]{2}"), str("abacadaeaf"), num(-1)}) ==
          strs({"ab", "ac", "ad", "ae", "af"}));
    // Empty matches: none right after a match, the search steps over whole code points.
    CHECK(eval("regex.find_n", {str("a*"), str("baaåc"), num(-1)}) == strs({"", "aa", "", ""}));
}

TEST_CASE("regex.find_all_string_submatch_n: groups, unmatched groups are empty strings") {
    CHECK(eval("regex.find_all_string_submatch_n", {str("a(x*)b"), str("-ab-axb-"), num(-1)}) ==
          Value::array({strs({"ab", ""}), strs({"axb", "x"})}));
    CHECK(eval("regex.find_all_string_submatch_n",
               {str("[^aouiye]([aouiye])([^aouiye])?"), str("somestri"), num(-1)}) ==
          Value::array({strs({"som", "o", "m"}), strs({"ri", "i", ""})}));
    CHECK(eval("regex.find_all_string_submatch_n", {str("a(x*)b"), str("-ab-axb-"), num(1)}) ==
          Value::array({strs({"ab", ""})}));
}

TEST_CASE("regex.split: Go's Regexp.Split semantics") {
    CHECK(eval("regex.split", {str("^[a-z]+\\[[0-9]+\\]$"), str("")}) == strs({""}));
    CHECK(eval("regex.split", {str("^[a-z]+"), str("foobar baz")}) == strs({"", " baz"}));
    CHECK(eval("regex.split", {str("[a-z]+$"), str("foobar baz")}) == strs({"foobar ", ""}));
    CHECK(eval("regex.split", {str("^[a-z]+$"), str("foobar baz")}) == strs({"foobar baz"}));
    CHECK(eval("regex.split", {str("^[a-z ]+$"), str("foobar baz")}) == strs({"", ""}));
    CHECK(eval("regex.split", {str("a"), str("banana")}) == strs({"b", "n", "n", ""}));
    CHECK(eval("regex.split", {str("z+"), str("pizza")}) == strs({"pi", "a"}));
}

TEST_CASE("regex.replace: ReplaceAllString with $n and ${name} expansion") {
    CHECK(eval("regex.replace", {str("-wy-wxxy-"), str("w(x*)y"), str("0")}) == str("-0-0-"));
    CHECK(eval("regex.replace", {str("foo"), str("(foo)"), str("$1$1")}) == str("foofoo"));
    CHECK(eval("regex.replace", {str("foo"), str("^[a-z]"), str("F")}) == str("Foo"));
    CHECK(eval("regex.replace", {str("foo"), str("^[a-z]$"), str("F")}) == str("foo"));
    CHECK(eval("regex.replace", {str("foo"), str("[a-z]$"), str("F")}) == str("foF"));
    CHECK(eval("regex.replace", {str("foo bar"), str("[a-z]"), str("_")}) == str("___ ___"));
    CHECK(eval("regex.replace", {str("foo barx"), str("[a-z]{2}"), str("_")}) == str("_o __"));
    CHECK(eval("regex.replace", {str("ab"), str("x*"), str("-")}) == str("-a-b-"));
    CHECK(eval("regex.replace", {str("k=v"), str("(?P<key>\\w+)=(?P<val>\\w+)"),
                                 str("${val}=$key $$ $1x")}) == str("v=k $ "));
    CHECK_THAT(
        failure(PolicyErrc::kBuiltinError, "regex.replace", {str("foo"), str("["), str("$1")}),
        Catch::Contains("missing closing ]"));
}

TEST_CASE("regex.template_match: regexes between delimiters, literal text outside") {
    CHECK(eval("regex.template_match", {str("urn:foo:{.*}"), str("urn:foo:bar:baz"), str("{"),
                                        str("}")}) == Value::boolean(true));
    CHECK(eval("regex.template_match", {str("urn:foo.{[0-9]+}"), str("urn:fooX12"), str("{"),
                                        str("}")}) == Value::boolean(false));
    CHECK(eval("regex.template_match", {str("a<[a-z]+>c"), str("abbc"), str("<"), str(">")}) ==
          Value::boolean(true));
    CHECK_THAT(failure(PolicyErrc::kBuiltinError, "regex.template_match",
                       {str("urn:{.*"), str("x"), str("{"), str("}")}),
               Catch::Contains("unbalanced braces"));
    CHECK_THAT(
        failure(PolicyErrc::kBuiltinError, "regex.template_match",
                {str("x"), str("x"), str("{{"), str("}")}),
        Catch::Contains("start delimiter has to be exactly one character long but is 2 long"));
}

TEST_CASE("glob.match: * and ? stop at delimiters, ** does not") {
    const Value dot = strs({"."});
    CHECK(globMatch("*.github.com", dot, "api.github.com"));
    CHECK_FALSE(globMatch("*.github.com", dot, "api.not-github.com"));
    CHECK_FALSE(globMatch("*.github.com", dot, "api.cdn.github.com"));
    CHECK(globMatch("api.**.com", dot, "api.cdn.github.com"));
    CHECK(globMatch("*:github:com", strs({":"}), "api:github:com"));
    CHECK(globMatch("?at", strs({"f"}), "bat"));
    CHECK_FALSE(globMatch("?at", strs({"f"}), "fat"));
    CHECK_FALSE(globMatch("?at", Value::emptyArray(), "at"));
}

TEST_CASE("glob.match: an empty delimiter list means '.', null means none") {
    CHECK(globMatch("*", Value::emptyArray(), "foo"));
    CHECK_FALSE(globMatch("*", Value::emptyArray(), "foo.bar"));
    CHECK(globMatch("*", Value::null(), "foo.bar"));
    CHECK(globMatch("foo*", Value::null(), "foo.bar"));
    CHECK(globMatch("a*", Value::null(), "a\nb"));
}

TEST_CASE("glob.match: character lists, ranges, negation, alternatives and escapes") {
    const Value none = Value::emptyArray();
    CHECK(globMatch("[abc]at", none, "cat"));
    CHECK_FALSE(globMatch("[abc]at", none, "fat"));
    CHECK(globMatch("[!abc]at", none, "fat"));
    CHECK_FALSE(globMatch("[!abc]at", none, "cat"));
    CHECK(globMatch("[a-c]at", none, "bat"));
    CHECK_FALSE(globMatch("[!a-c]at", none, "bat"));
    CHECK(globMatch("[!a-c]at", none, "fat"));
    CHECK(globMatch("{cat,bat,[fr]at}", none, "rat"));
    CHECK_FALSE(globMatch("{cat,bat,[fr]at}", none, "at"));
    CHECK(globMatch("{a,b{c,d}}x", none, "bdx"));
    CHECK(globMatch("\\*.com", none, "*.com"));
    CHECK_FALSE(globMatch("\\*.com", none, "a.com"));
    CHECK(globMatch("a,b}", none, "a,b}"));
    CHECK(globMatch("(a|b)+$", none, "(a|b)+$"));
    CHECK(globMatch("[.]", strs({"."}), "."));  // lists ignore delimiters
    CHECK(globMatch("é?", strs({"."}), "éü"));
}

TEST_CASE("glob.match: malformed patterns and delimiters are errors") {
    CHECK_THAT(
        failure(PolicyErrc::kBuiltinError, "glob.match", {str("[abc"), Value::null(), str("a")}),
        Catch::Contains("unexpected end of input"));
    CHECK_THAT(
        failure(PolicyErrc::kBuiltinError, "glob.match", {str("[]"), Value::null(), str("a")}),
        Catch::Contains("could not parse range"));
    CHECK(failure(PolicyErrc::kTypeError, "glob.match", {str("*"), strs({"ab"}), str("a")}) ==
          "glob.match: operand 2 must be array of runes but got array containing string");
    CHECK(failure(PolicyErrc::kTypeError, "glob.match", {str("*"), num(1), str("a")}) ==
          "glob.match: operand 2 must be one of {array, null} but got number");
}

TEST_CASE("glob.quote_meta escapes gobwas meta characters only") {
    CHECK(eval("glob.quote_meta", {str("*.github.com")}) == str("\\*.github.com"));
    CHECK(eval("glob.quote_meta", {str("[a]{b,c}?\\!-")}) == str("\\[a\\]\\{b,c\\}\\?\\\\!-"));
    const Value quoted = eval("glob.quote_meta", {str("a*[b]")});
    CHECK(globMatch(quoted.asString().c_str(), Value::null(), "a*[b]"));
}

TEST_CASE("regex.globs_match: whether two globs share a matching string") {
    auto intersects = [](const char* a, const char* b) {
        const Value v = eval("regex.globs_match", {str(a), str(b)});
        REQUIRE(v.isBool());
        return v.asBool();
    };
    CHECK(intersects("a.a.[0-9]+z", ".b.b2359825792*594823z"));
    CHECK_FALSE(intersects("[a-z]+", "[0-9]*"));
    CHECK(intersects("b.*", "bar"));
    CHECK(intersects("[a-z]+\\[[0-9]+\\]", "foo\\[1\\]"));
    CHECK_FALSE(intersects("[a-z]+\\[[0-9]+\\]", "foo[\"bar\"]"));
    CHECK(intersects("a*", ""));
    CHECK_FALSE(intersects("a+", ""));
    CHECK(intersects(".*x.*", "y*xy*"));
    CHECK(failure(PolicyErrc::kBuiltinError, "regex.globs_match", {str("pqrs]"), str("[a-b]+")}) ==
          "regex.globs_match: input:pqrs], pos:5, set-close ']' with no preceding '[': the input "
          "provided is "
          "invalid");
    CHECK_THAT(failure(PolicyErrc::kBuiltinError, "regex.globs_match", {str("[ab"), str("a")}),
               Catch::Contains("found [ without matching ]"));
    CHECK_THAT(failure(PolicyErrc::kBuiltinError, "regex.globs_match", {str("a**"), str("a")}),
               Catch::Contains("flag '*' must be preceded by a non-flag"));
}
