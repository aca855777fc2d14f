#pragma once
// The terminal: its width, and help text wrapped to it.

#include <CLI/CLI.hpp>

#include <memory>
#include <string>

namespace fleetkey::cmd {

// The width of the terminal standard output goes to, in columns: $COLUMNS when it is a number, else
// the terminal's (TIOCGWINSZ) when standard output is one, else 80; at least 40.
int terminal_columns();

// `text` wrapped at spaces to lines of at most `width` columns (a longer word gets a line of its own,
// never broken), each line after the first indented by `indent` spaces; '\n' starts a new line.
std::string wrap_text(std::string_view text, size_t width, size_t indent = 0);

// CLI11's help formatter with every description wrapped at word boundaries to `width` columns.
std::shared_ptr<CLI::Formatter> wrapping_formatter(int width);

} // namespace fleetkey::cmd
