#pragma once
// Internal: the subset of Go's text/template that strings.render_template needs. Supported:
// text, {{/* comments */}}, trim markers {{- -}}, {{.}}, {{.a.b}}, {{$}}, {{$x.a}}, literals,
// {{if}}/{{else if}}/{{else}}/{{end}}, {{range [$i, $v :=] …}}…{{else}}…{{end}},
// {{with}}…{{end}}, {{$x := …}}, and the functions not, and, or, eq, ne, len, index.
// Missing object keys print "<undefined>" (as OPA's render_template does); values print as
// Go's fmt %v prints the decoded JSON (arrays "[a b]", objects "map[k:v]").
#include <string>
#include <string_view>

#include "shared/core/error.hpp"
#include "shared/policy/value.hpp"

namespace edge::policy::detail {

/// Renders `tmpl` with `data` as dot. Errors carry Go-like "template: …" texts.
[[nodiscard]] Result<std::string> renderGoTemplate(std::string_view tmpl, const Value& data);

}  // namespace edge::policy::detail
