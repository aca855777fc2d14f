#include "terminal.hpp"

#include <algorithm>
#include <charconv>
#include <cstdlib>
#include <string_view>
#include <sys/ioctl.h>
#include <unistd.h>

namespace fleetkey::cmd {

namespace {

constexpr int k_default_columns = 80;
constexpr int k_min_columns = 40;
constexpr int k_max_columns = 1000;

class WrappingFormatter : public CLI::Formatter
{
public:
  explicit WrappingFormatter(int width)
      : m_width(static_cast<size_t>(width))
  {
    // The names column: CLI11's 30, or half of a narrow terminal.
    column_width(std::min<size_t>(30, m_width / 2));
  }

  std::string make_option(const CLI::Option* opt, bool is_positional) const override
  {
    return two_columns(make_option_name(opt, is_positional) + make_option_opts(opt), make_option_desc(opt));
  }
  std::string make_subcommand(const CLI::App* sub) const override
  {
    return two_columns(sub->get_display_name(true), sub->get_description());
  }
  std::string make_description(const CLI::App* app) const override
  {
    const std::string desc = CLI::Formatter::make_description(app);
    return desc.empty() ? desc : wrap_text(desc, m_width) + "\n";
  }
  std::string make_footer(const CLI::App* app) const override
  {
    const std::string footer = CLI::Formatter::make_footer(app);
    return footer.empty() ? footer : wrap_text(footer, m_width) + "\n";
  }

private:
  // As CLI11's detail::format_help: the name in the left column (the description starts on the next
  // line when the name fills it), the description wrapped in the right one.
  std::string two_columns(const std::string& name, const std::string& desc) const
  {
    const size_t col = column_width_;
    std::string out = "  " + name;
    if (!desc.empty()) {
      if (out.size() >= col) {
        out += "\n";
        out.append(col, ' ');
      } else {
        out.append(col - out.size(), ' ');
      }
      out += wrap_text(desc, m_width > col ? m_width - col : 1, col);
    }
    return out + "\n";
  }

  size_t m_width;
};

} // namespace

int terminal_columns()
{
  int columns = 0;
  if (const char* env = std::getenv("COLUMNS"); env != nullptr && *env != '\0') {
    const std::string_view v(env);
    int n = 0;
    const auto [end, ec] = std::from_chars(v.data(), v.data() + v.size(), n);
    if (ec == std::errc() && end == v.data() + v.size() && n > 0) {
      columns = n;
    }
  }
  if (columns == 0) {
    struct winsize ws
    {
    };
    if (::isatty(STDOUT_FILENO) != 0 && ::ioctl(STDOUT_FILENO, TIOCGWINSZ, &ws) == 0 && ws.ws_col > 0) {
      columns = ws.ws_col;
    }
  }
  if (columns == 0) {
    columns = k_default_columns;
  }
  return std::clamp(columns, k_min_columns, k_max_columns);
}

std::string wrap_text(std::string_view text, size_t width, size_t indent)
{
  std::string out;
  size_t line = 0; // columns on the current line, the indent excluded
  auto new_line = [&] {
    out += '\n';
    out.append(indent, ' ');
    line = 0;
  };
  size_t at = 0;
  while (at <= text.size()) {
    const size_t nl = std::min(text.find('\n', at), text.size());
    const std::string_view para = text.substr(at, nl - at);
    size_t i = 0;
    while (i < para.size()) {
      while (i < para.size() && para[i] == ' ') {
        ++i;
      }
      if (i == para.size()) {
        break;
      }
      size_t j = i;
      while (j < para.size() && para[j] != ' ') {
        ++j;
      }
      // Columns, not bytes: UTF-8 continuation bytes take none.
      const std::string_view word = para.substr(i, j - i);
      size_t cols = 0;
      for (const char c : word) {
        cols += (static_cast<unsigned char>(c) & 0xc0) != 0x80 ? 1 : 0;
      }
      if (line > 0 && line + 1 + cols > width) {
        new_line();
      }
      if (line > 0) {
        out += ' ';
        ++line;
      }
      out += word;
      line += cols;
      i = j;
    }
    if (nl >= text.size()) {
      break;
    }
    new_line();
    at = nl + 1;
  }
  return out;
}

std::shared_ptr<CLI::Formatter> wrapping_formatter(int width)
{
  return std::make_shared<WrappingFormatter>(width);
}

} // namespace fleetkey::cmd
