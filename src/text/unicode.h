// Unicode basics for the tokenizers: UTF-8 <-> code points, the character classes the
// pre-tokenizer patterns use (\p{L}, \p{N}, \s = White_Space), and NFC. Classes come from ICU's
// character database (Debian libicu), so they follow a real Unicode table.
#pragma once

#include <string>
#include <string_view>

namespace lomo::text {

// Invalid UTF-8 decodes to U+FFFD, one per maximal invalid subpart (the Unicode "substitution of
// maximal subparts" rule, which Rust's String::from_utf8_lossy and so `tokenizers` follow).
std::u32string utf8_to_u32(std::string_view s);
std::string utf8_lossy(std::string_view s);
std::string u32_to_utf8(std::u32string_view s);
void append_utf8(std::string& out, char32_t c);

bool is_letter(char32_t c);  // general category L*
bool is_number(char32_t c);  // general category N*
bool is_space(char32_t c);   // White_Space property (regex \s)

std::string nfc(std::string_view s);

}  // namespace lomo::text
