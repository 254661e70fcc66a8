// Keyword conditions: whole words or phrases, case-insensitive, on the request's lowercased text.
// One regex per list, built once at compile time. \b is ASCII-only in JS regexes and fails next to
// punctuation ("c++", "node.js"), so word edges are lookarounds on Unicode letters, digits and "_".
// Whitespace inside a phrase matches any run of whitespace ("unit  test" matches "unit test").
// Only regex syntax characters are escaped: with the "u" flag, escaping anything else ("\-") throws.

const EDGE_BEFORE = "(?<![\\p{L}\\p{N}_])";
const EDGE_AFTER = "(?![\\p{L}\\p{N}_])";

export function keywordMatcher(keywords: readonly string[]): RegExp {
  const alternatives = keywords.map((k) =>
    k
      .trim()
      .toLowerCase()
      .split(/\s+/)
      .map((word) => word.replace(/[.*+?^${}()|[\]\\/]/g, "\\$&"))
      .join("\\s+"),
  );
  // Longest first, so "unit test" is tried before "unit" (either matches; this keeps it predictable).
  alternatives.sort((a, b) => b.length - a.length);
  return new RegExp(`${EDGE_BEFORE}(?:${alternatives.join("|")})${EDGE_AFTER}`, "u");
}
