// The shell completions and the command reference of man/fleetkey.1, generated from the CLI definition
// (fleetkey-gendocs writes them into the source tree; fleetkey completion prints a script). Over
// 400 lines on purpose: one walk of the CLI definition and its four writers (bash, zsh, fish, roff),
// which change together whenever an option's kind does.

#include "docs.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <sstream>
#include <stdexcept>
#include <vector>

namespace fleetkey::cmd::docs {

namespace {

struct Opt
{
  std::vector<std::string> names; // "-q", "--quiet"
  std::string metavar;            // "FILE"; empty for a flag
  std::vector<std::string> choices;
  std::string help;
  std::string default_value;
  bool positional = false;
  bool required = false;
  bool repeatable = false;
};

struct Command
{
  std::string path; // "device add"; "" for the top level
  std::string help;
  std::vector<std::string> subcommands;
  std::vector<Opt> options;
};

std::string join(const std::vector<std::string>& v, std::string_view sep)
{
  std::string out;
  for (size_t i = 0; i < v.size(); ++i) {
    out += (i ? std::string(sep) : "") + v[i];
  }
  return out;
}

Opt to_opt(const CLI::Option* o)
{
  Opt opt;
  opt.positional = o->get_positional() && o->get_lnames().empty() && o->get_snames().empty();
  if (opt.positional) {
    opt.names.push_back(o->get_name());
  }
  for (const auto& s : o->get_snames()) {
    opt.names.push_back("-" + s);
  }
  for (const auto& l : o->get_lnames()) {
    opt.names.push_back("--" + l);
  }
  std::string type = o->get_expected_max() == 0 ? "" : o->get_type_name();
  if (auto colon = type.find(":{"); colon != std::string::npos) {
    std::string list = type.substr(colon + 2, type.size() - colon - 3);
    std::stringstream ss(list);
    for (std::string item; std::getline(ss, item, ',');) {
      opt.choices.push_back(item);
    }
    type = join(opt.choices, "|");
  }
  opt.metavar = type;
  opt.help = o->get_description();
  opt.default_value = o->get_default_str();
  opt.required = o->get_required();
  opt.repeatable = o->get_expected_max() > 1;
  return opt;
}

void collect(const CLI::App* app, const std::string& path, std::vector<Command>& out)
{
  Command c;
  c.path = path;
  c.help = app->get_description();
  for (const CLI::Option* o : app->get_options()) {
    if (o->get_group().empty()) {
      continue; // hidden: a deprecated spelling, documented by hand (fleetkey(1), SCRIPTING)
    }
    c.options.push_back(to_opt(o));
  }
  // Hidden commands (no group: __complete) are left out, as from the help.
  const auto subs = app->get_subcommands([](const CLI::App* s) { return !s->get_group().empty(); });
  for (const CLI::App* s : subs) {
    c.subcommands.push_back(s->get_name());
  }
  out.push_back(c);
  for (const CLI::App* s : subs) {
    collect(s, path.empty() ? s->get_name() : path + " " + s->get_name(), out);
  }
}

std::string roff(std::string_view s)
{
  std::string out;
  for (char ch : s) {
    if (ch == '\\') {
      out += "\\e";
    } else if (ch == '-') {
      out += "\\-";
    } else {
      out += ch;
    }
  }
  if (!out.empty() && (out[0] == '.' || out[0] == '\'')) {
    out = "\\&" + out;
  }
  return out;
}

bool is_help(const Opt& o)
{
  return !o.names.empty() && o.names.back() == "--help";
}

std::string synopsis(const Command& c)
{
  std::string s = "fleetkey " + c.path;
  for (const auto& o : c.options) {
    if (o.positional) {
      s += " " + o.names[0];
    }
  }
  for (const auto& o : c.options) {
    if (o.positional || is_help(o)) {
      continue;
    }
    std::string item = o.names.back() + (o.metavar.empty() ? "" : " " + o.metavar);
    s += o.required ? " " + item : " [" + item + "]";
    if (o.repeatable) {
      s += "...";
    }
  }
  return s;
}

// A command with options or positionals of its own gets a section, even when it also has
// subcommands (`pair DEVICE` and `pair decode CODE`); a group with only --help does not.
bool has_own_options(const Command& c)
{
  return std::any_of(c.options.begin(), c.options.end(), [](const Opt& o) { return !is_help(o); });
}

std::string man_reference(const std::vector<Command>& cmds)
{
  std::string out = ".\\\" BEGIN GENERATED COMMAND REFERENCE: edit cmd/*.cpp and run `make docs`\n";
  for (const auto& c : cmds) {
    if (c.path.empty() || (!c.subcommands.empty() && !has_own_options(c))) {
      continue;
    }
    out += fmt::format(".SS \"{}\"\n{}\n", roff(synopsis(c)), roff(c.help));
    for (const auto& o : c.options) {
      if (is_help(o)) {
        continue;
      }
      out += ".TP\n";
      if (o.positional) {
        out += fmt::format("\\fI{}\\fR\n", roff(o.names[0]));
      } else {
        std::vector<std::string> names;
        for (const auto& n : o.names) {
          names.push_back(fmt::format("\\fB{}\\fR", roff(n)));
        }
        out += join(names, ", ");
        if (!o.metavar.empty()) {
          out += fmt::format(" \\fI{}\\fR", roff(o.metavar));
        }
        out += "\n";
      }
      std::string help = o.help;
      if (!o.choices.empty()) {
        help += fmt::format(": one of {}", join(o.choices, ", "));
      }
      if (!o.default_value.empty()) {
        help += fmt::format(" (default: {})", o.default_value);
      }
      if (o.required && !o.positional) {
        help += " (required)";
      }
      if (o.repeatable && o.help.find("(repeatable)") == std::string::npos) {
        help += " (repeatable)";
      }
      out += roff(help) + "\n";
    }
  }
  out += ".\\\" END GENERATED COMMAND REFERENCE\n";
  return out;
}

constexpr std::string_view k_header =
    "fleetkey shell completion, generated by fleetkey-gendocs from the CLI definition. "
    "Do not edit: change cmd/*.cpp and run `make docs`.";

// Options that take a value, per command path: completions skip their argument when finding the path.
std::string value_options(const Command& c)
{
  std::vector<std::string> names;
  for (const auto& o : c.options) {
    if (!o.positional && !o.metavar.empty()) {
      for (const auto& n : o.names) {
        names.push_back(n);
      }
    }
  }
  return join(names, " ");
}

std::string sh_quote(std::string_view s)
{
  std::string out = "'";
  for (char ch : s) {
    out += ch == '\'' ? std::string("'\\''") : std::string(1, ch);
  }
  return out + "'";
}

// Completes from the registry by calling `fleetkey __complete devices|users PREFIX` (read-only, silent on
// errors) with the --home and --registry the command line gives; on a command whose positional is a
// device or a user, subcommands are offered only once a prefix is typed (`pair <Tab>` never inserts
// decode).
constexpr std::string_view k_bash_function = R"sh(_fleetkey_registry() {
  local IFS=$'\n'
  COMPREPLY+=($("${COMP_WORDS[0]}" "${globals[@]}" __complete "$1" "$2" 2>/dev/null))
}

_fleetkey() {
  local cur prev cmdpath w i skip globals=()
  cur="${COMP_WORDS[COMP_CWORD]}"
  prev="${COMP_WORDS[COMP_CWORD-1]}"
  cmdpath=""
  skip=0
  for ((i = 1; i < COMP_CWORD; i++)); do
    w="${COMP_WORDS[i]}"
    if ((skip)); then skip=0; continue; fi
    case "$w" in
      --home|--registry) globals+=("$w" "${COMP_WORDS[i+1]}") ;;
      --home=*|--registry=*) globals+=("$w") ;;
    esac
    case "$w" in -*) case " $(_fleetkey_values "$cmdpath") " in *" $w "*) skip=1 ;; esac; continue ;; esac
    case " $(_fleetkey_subcommands "$cmdpath") " in *" $w "*) cmdpath="${cmdpath:+$cmdpath }$w" ;; esac
  done
  case "$prev" in -*)
    case " $(_fleetkey_values "$cmdpath") " in *" $prev "*)
      local choices; choices="$(_fleetkey_choices "$cmdpath" "$prev")"
      case "$choices" in
        @file) COMPREPLY=($(compgen -f -- "$cur")) ;;
        @dir) COMPREPLY=($(compgen -d -- "$cur")) ;;
        @device) COMPREPLY=(); _fleetkey_registry devices "$cur" ;;
        *) COMPREPLY=($(compgen -W "$choices" -- "$cur")) ;;
      esac
      return 0 ;;
    esac ;;
  esac
  if [[ "$cur" == -* ]]; then
    COMPREPLY=($(compgen -W "$(_fleetkey_options "$cmdpath")" -- "$cur"))
    return 0
  fi
  local positional; positional="$(_fleetkey_positional "$cmdpath")"
  COMPREPLY=()
  case "$positional" in
    @device|@user) [[ -n "$cur" ]] && COMPREPLY=($(compgen -W "$(_fleetkey_subcommands "$cmdpath")" -- "$cur")) ;;
    *) COMPREPLY=($(compgen -W "$(_fleetkey_subcommands "$cmdpath")" -- "$cur")) ;;
  esac
  case "$positional" in
    @file) COMPREPLY+=($(compgen -f -- "$cur")) ;;
    @device) _fleetkey_registry devices "$cur" ;;
    @user) _fleetkey_registry users "$cur" ;;
  esac
}

)sh";

// What a command's first positional completes to: @file for a file, @device for a registered device's
// id, @user for a user's name (from the registry: fleetkey __complete), none for a new name (add).
std::string positional_kind(const Command& c)
{
  for (const auto& o : c.options) {
    if (!o.positional) {
      continue;
    }
    if (o.names[0] == "FILE" || o.metavar == "FILE") {
      return "@file";
    }
    const bool adds = c.path.ends_with(" add");
    if ((o.names[0] == "ID" || o.names[0] == "DEVICE") && !adds) {
      return "@device";
    }
    if (o.names[0] == "NAME" && c.path.starts_with("user ") && !adds) {
      return "@user";
    }
    return "";
  }
  return "";
}

// The case tables every shell's completion function reads: subcommands, options, options that
// take a value, their choices (@file, @dir for names), and commands whose positional is a file.
std::string tables(const std::vector<Command>& cmds)
{
  std::string subs, opts, vals, choices, positional;
  const Command& top = cmds.front();
  for (const auto& c : cmds) {
    const auto key = sh_quote(c.path);
    if (!c.subcommands.empty()) {
      subs += fmt::format("    {}) echo {} ;;\n", key, sh_quote(join(c.subcommands, " ")));
    }
    std::vector<std::string> names;
    for (const auto* cc : {&c, &top}) {
      for (const auto& o : cc->options) {
        if (!o.positional && (cc == &c || o.names.back() != "--help")) {
          names.insert(names.end(), o.names.begin(), o.names.end());
        }
      }
      if (&c == &top) {
        break;
      }
    }
    opts += fmt::format("    {}) echo {} ;;\n", key, sh_quote(join(names, " ")));
    vals += fmt::format("    {}) echo {} ;;\n", key,
                        sh_quote(value_options(c) + (c.path.empty() ? "" : " " + value_options(top))));
    for (const auto* cc : {&c, &top}) {
      for (const auto& o : cc->options) {
        if (o.positional || o.metavar.empty()) {
          continue;
        }
        std::string what = !o.choices.empty()                            ? join(o.choices, " ")
                           : o.metavar.find("FILE") != std::string::npos ? "@file"
                           : o.metavar == "DIR"                          ? "@dir"
                           : o.metavar == "ID" || o.metavar == "DEVICE"  ? "@device"
                                                                         : "";
        for (const auto& n : o.names) {
          choices += fmt::format("    {}) echo {} ;;\n", sh_quote(c.path + "|" + n), sh_quote(what));
        }
      }
      if (&c == &top) {
        break;
      }
    }
    if (const auto what = positional_kind(c); !what.empty()) {
      positional += fmt::format("    {}) echo {} ;;\n", key, what);
    }
  }
  std::string out;
  out += "_fleetkey_subcommands() {\n  case \"$1\" in\n" + subs + "  esac\n}\n\n";
  out += "_fleetkey_options() {\n  case \"$1\" in\n" + opts + "  esac\n}\n\n";
  out += "_fleetkey_values() {\n  case \"$1\" in\n" + vals + "  esac\n}\n\n";
  out += "_fleetkey_choices() {\n  case \"$1|$2\" in\n" + choices + "  esac\n}\n\n";
  out += "_fleetkey_positional() {\n  case \"$1\" in\n" + positional + "  esac\n}\n";
  return out;
}

std::string bash(const std::vector<Command>& cmds)
{
  std::string out = fmt::format(
      "# {}\n# bash: source this file, or install it as bash-completion/completions/fleetkey.\n\n", k_header);
  out += k_bash_function;
  out += tables(cmds);
  out += "\ncomplete -F _fleetkey fleetkey\n";
  return out;
}

constexpr std::string_view k_zsh_function = R"sh(_fleetkey_registry() {
  ${words[1]} "${globals[@]}" __complete $1 "${words[CURRENT]}" 2>/dev/null
}

_fleetkey() {
  local cmdpath='' w i skip=0 choices positional
  local -a globals
  for ((i = 2; i < CURRENT; i++)); do
    w=${words[i]}
    if ((skip)); then skip=0; continue; fi
    case $w in
      --home|--registry) globals+=($w ${words[i+1]}) ;;
      --home=*|--registry=*) globals+=($w) ;;
    esac
    if [[ $w == -* ]]; then
      [[ " $(_fleetkey_values "$cmdpath") " == *" $w "* ]] && skip=1
      continue
    fi
    [[ " $(_fleetkey_subcommands "$cmdpath") " == *" $w "* ]] && cmdpath="${cmdpath:+$cmdpath }$w"
  done
  local prev=${words[CURRENT-1]}
  if [[ $prev == -* && " $(_fleetkey_values "$cmdpath") " == *" $prev "* ]]; then
    choices=$(_fleetkey_choices "$cmdpath" "$prev")
    case $choices in
      @file) _files ;;
      @dir) _files -/ ;;
      @device) compadd -- ${(f)"$(_fleetkey_registry devices)"} ;;
      *) compadd -- ${=choices} ;;
    esac
    return
  fi
  if [[ ${words[CURRENT]} == -* ]]; then
    compadd -- ${=$(_fleetkey_options "$cmdpath")}
    return
  fi
  positional=$(_fleetkey_positional "$cmdpath")
  case $positional in
    @device|@user) [[ -n ${words[CURRENT]} ]] && compadd -- ${=$(_fleetkey_subcommands "$cmdpath")} ;;
    *) compadd -- ${=$(_fleetkey_subcommands "$cmdpath")} ;;
  esac
  case $positional in
    @file) _files ;;
    @device) compadd -- ${(f)"$(_fleetkey_registry devices)"} ;;
    @user) compadd -- ${(f)"$(_fleetkey_registry users)"} ;;
  esac
}

)sh";

std::string zsh(const std::vector<Command>& cmds)
{
  std::string out = fmt::format("#compdef fleetkey\n# {}\n\n", k_header);
  out += k_zsh_function;
  out += tables(cmds);
  out += "\nif [[ ${zsh_eval_context[-1]} == loadautofunc ]]; then\n  _fleetkey \"$@\"\nelse\n  compdef _fleetkey "
         "fleetkey\nfi\n";
  return out;
}

std::string fish_escape(std::string_view s)
{
  std::string out = "'";
  for (char ch : s) {
    if (ch == '\'' || ch == '\\') {
      out += '\\';
    }
    out += ch;
  }
  return out + "'";
}

// The two fish functions every completion calls: the command path typed so far, and the registry's
// device ids or user names.
std::string fish_functions(const std::vector<Command>& cmds)
{
  std::vector<std::string> paths;
  for (const auto& c : cmds) {
    if (!c.path.empty()) {
      paths.push_back(fish_escape(c.path));
    }
  }
  std::vector<std::string> values;
  for (const auto& c : cmds) {
    for (const auto& o : c.options) {
      if (!o.positional && !o.metavar.empty()) {
        values.insert(values.end(), o.names.begin(), o.names.end());
      }
    }
  }
  std::sort(values.begin(), values.end());
  values.erase(std::unique(values.begin(), values.end()), values.end());
  std::string out = "# The command path typed so far (\"device add\"), skipping options and their values.\n";
  out += "function __fleetkey_path\n  set -l known " + join(paths, " ") + "\n";
  out += "  set -l takes_value " + join(values, " ") + "\n";
  out += "  set -l path ''\n  set -l skip 0\n  for w in (commandline -opc)[2..-1]\n";
  out += "    if test $skip = 1\n      set skip 0\n      continue\n    end\n";
  out +=
      "    if string match -q -- '-*' $w\n      contains -- $w $takes_value; and set skip 1\n      continue\n    end\n";
  out += "    set -l next (string trim -- \"$path $w\")\n    contains -- $next $known; and set path $next\n  end\n";
  out += "  echo $path\nend\n\n";
  out +=
      "# Device ids or user names ($argv[1]: devices, users) from the registry of the --home and --registry typed.\n";
  out += "function __fleetkey_registry\n  set -l words (commandline -opc)\n  set -l globals\n";
  out += "  for i in (seq 2 (count $words))\n";
  out += "    if contains -- $words[$i] --home --registry; and test $i -lt (count $words)\n";
  out += "      set -a globals $words[$i] $words[(math $i + 1)]\n";
  out += "    else if string match -q -- '--home=*' $words[$i]; or string match -q -- '--registry=*' $words[$i]\n";
  out += "      set -a globals $words[$i]\n    end\n  end\n";
  out += "  $words[1] $globals __complete $argv[1] (commandline -ct) 2>/dev/null\nend\n\n";
  return out;
}

// The completion of one option (not a positional) under the condition `cond`.
std::string fish_option(const Opt& o, const std::string& cond)
{
  std::string line = "complete -c fleetkey " + cond;
  for (const auto& n : o.names) {
    line += n.size() == 2 ? " -s " + n.substr(1) : " -l " + n.substr(2);
  }
  if (!o.metavar.empty()) {
    // -x: a value is required and it is not a file name; -r -F: it is one.
    if (!o.choices.empty()) {
      line += " -x -a " + fish_escape(join(o.choices, " "));
    } else if (o.metavar.find("FILE") != std::string::npos || o.metavar == "DIR") {
      line += " -r -F";
    } else if (o.metavar == "ID" || o.metavar == "DEVICE") {
      line += " -x -a '(__fleetkey_registry devices)'";
    } else {
      line += " -x";
    }
  }
  return line + " -d " + fish_escape(o.help) + "\n";
}

// The completions of one command: its positional, its subcommands, its options and the global ones.
std::string fish_command(const Command& c, const std::vector<Command>& cmds)
{
  std::string out;
  const Command& top = cmds.front();
  const std::string cond = fmt::format("-n 'test (__fleetkey_path) = \"{}\"'", c.path);
  const std::string kind = positional_kind(c);
  if (kind == "@device" || kind == "@user") {
    out += fmt::format("complete -c fleetkey {} -a '(__fleetkey_registry {}s)'\n", cond, kind.substr(1));
  }
  // A device or a user is expected: subcommands only once a prefix is typed (pair <Tab> never inserts decode).
  const std::string sub_cond =
      kind == "@device" || kind == "@user"
          ? fmt::format("-n 'test (__fleetkey_path) = \"{}\"; and test -n (commandline -ct)'", c.path)
          : cond;
  for (const auto& s : c.subcommands) {
    std::string help;
    for (const auto& cc : cmds) {
      if (cc.path == (c.path.empty() ? s : c.path + " " + s)) {
        help = cc.help;
      }
    }
    out += fmt::format("complete -c fleetkey {} -a {} -d {}\n", sub_cond, fish_escape(s), fish_escape(help));
  }
  for (const auto* cc : {&c, &top}) {
    for (const auto& o : cc->options) {
      if (o.positional || (cc != &c && o.names.back() == "--help")) {
        if (o.positional && (o.names[0] == "FILE")) {
          out += fmt::format("complete -c fleetkey {} -F\n", cond);
        }
        continue;
      }
      out += fish_option(o, cond);
    }
    if (&c == &top) {
      break;
    }
  }
  return out;
}

std::string fish(const std::vector<Command>& cmds)
{
  std::string out = fmt::format("# {}\n\n", k_header);
  out += fish_functions(cmds);
  out += "complete -c fleetkey -f\n";
  for (const auto& c : cmds) {
    out += fish_command(c, cmds);
  }
  return out;
}
} // namespace

std::string completion_script(const CLI::App& app, std::string_view shell)
{
  std::vector<Command> cmds;
  collect(&app, "", cmds);
  if (shell == "bash") {
    return bash(cmds);
  }
  if (shell == "zsh") {
    return zsh(cmds);
  }
  if (shell == "fish") {
    return fish(cmds);
  }
  throw std::invalid_argument("unknown shell");
}

std::string man_reference(const CLI::App& app)
{
  std::vector<Command> cmds;
  collect(&app, "", cmds);
  return man_reference(cmds);
}

} // namespace fleetkey::cmd::docs
