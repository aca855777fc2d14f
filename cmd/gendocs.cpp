// fleetkey-gendocs: writes the shell completions and the command reference of man/fleetkey.1
// from the CLI definition itself, so that neither can drift from the commands. Over 400 lines on
// purpose: one walk of the CLI definition and its four writers (bash, zsh, fish, roff), which change
// together whenever an option's kind does.
//
//   fleetkey-gendocs --write SOURCE_DIR   regenerate the files
//   fleetkey-gendocs --check SOURCE_DIR   exit 1 if any of them differs from what it would write

#include "commands.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <fstream>
#include <iostream>
#include <map>
#include <sstream>

namespace {

using fleetkey::cmd::Context;

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
  const auto subs = app->get_subcommands([](const CLI::App*) { return true; });
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

constexpr std::string_view k_bash_function =
    "_fleetkey() {\n  local cur prev cmdpath w i skip\n  cur=\"${COMP_WORDS[COMP_CWORD]}\"\n  "
    "prev=\"${COMP_WORDS[COMP_CWORD-1]}\"\n"
    "  cmdpath=\"\"\n  skip=0\n  for ((i = 1; i < COMP_CWORD; i++)); do\n    w=\"${COMP_WORDS[i]}\"\n"
    "    if ((skip)); then skip=0; continue; fi\n    case \"$w\" in -*) case \" $(_fleetkey_values \"$cmdpath\") \" in "
    "*\" $w \"*) skip=1 ;; esac; continue ;; esac\n"
    "    case \" $(_fleetkey_subcommands \"$cmdpath\") \" in *\" $w \"*) cmdpath=\"${cmdpath:+$cmdpath }$w\" ;; esac\n "
    " done\n"
    "  case \"$prev\" in -*)\n    case \" $(_fleetkey_values \"$cmdpath\") \" in *\" $prev \"*)\n"
    "      local choices; choices=\"$(_fleetkey_choices \"$cmdpath\" \"$prev\")\"\n"
    "      case \"$choices\" in\n        @file) COMPREPLY=($(compgen -f -- \"$cur\")) ;;\n        @dir) "
    "COMPREPLY=($(compgen -d -- \"$cur\")) ;;\n"
    "        *) COMPREPLY=($(compgen -W \"$choices\" -- \"$cur\")) ;;\n      esac\n      return 0 ;;\n    esac ;;\n  "
    "esac\n"
    "  if [[ \"$cur\" == -* ]]; then\n    COMPREPLY=($(compgen -W \"$(_fleetkey_options \"$cmdpath\")\" -- "
    "\"$cur\"))\n  else\n"
    "    COMPREPLY=($(compgen -W \"$(_fleetkey_subcommands \"$cmdpath\")\" -- \"$cur\"))\n"
    "    case \"$(_fleetkey_positional \"$cmdpath\")\" in @file) COMPREPLY+=($(compgen -f -- \"$cur\")) ;; esac\n  "
    "fi\n}\n\n";

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
                                                                         : "";
        for (const auto& n : o.names) {
          choices += fmt::format("    {}) echo {} ;;\n", sh_quote(c.path + "|" + n), sh_quote(what));
        }
      }
      if (&c == &top) {
        break;
      }
    }
    for (const auto& o : c.options) {
      if (o.positional && (o.names[0] == "FILE" || o.metavar == "FILE")) {
        positional += fmt::format("    {}) echo @file ;;\n", key);
      }
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

std::string zsh(const std::vector<Command>& cmds)
{
  std::string out = fmt::format("#compdef fleetkey\n# {}\n\n", k_header);
  out += "_fleetkey() {\n  local cmdpath='' w i skip=0 choices\n  for ((i = 2; i < CURRENT; i++)); do\n";
  out += "    w=${words[i]}\n    if ((skip)); then skip=0; continue; fi\n";
  out += "    if [[ $w == -* ]]; then\n      [[ \" $(_fleetkey_values \"$cmdpath\") \" == *\" $w \"* ]] && skip=1\n    "
         "  continue\n    fi\n";
  out += "    [[ \" $(_fleetkey_subcommands \"$cmdpath\") \" == *\" $w \"* ]] && cmdpath=\"${cmdpath:+$cmdpath }$w\"\n "
         " done\n";
  out += "  local prev=${words[CURRENT-1]}\n";
  out += "  if [[ $prev == -* && \" $(_fleetkey_values \"$cmdpath\") \" == *\" $prev \"* ]]; then\n";
  out += "    choices=$(_fleetkey_choices \"$cmdpath\" \"$prev\")\n";
  out += "    case $choices in\n      @file) _files ;;\n      @dir) _files -/ ;;\n      *) compadd -- ${=choices} ;;\n "
         "   esac\n    return\n  fi\n";
  out += "  if [[ ${words[CURRENT]} == -* ]]; then\n    compadd -- ${=$(_fleetkey_options \"$cmdpath\")}\n  else\n";
  out += "    compadd -- ${=$(_fleetkey_subcommands \"$cmdpath\")}\n";
  out += "    [[ $(_fleetkey_positional \"$cmdpath\") == @file ]] && _files\n  fi\n}\n\n";
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

std::string fish(const std::vector<Command>& cmds)
{
  std::string out = fmt::format("# {}\n\n", k_header);
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
  out += "# The command path typed so far (\"device add\"), skipping options and their values.\n";
  out += "function __fleetkey_path\n  set -l known " + join(paths, " ") + "\n";
  out += "  set -l takes_value " + join(values, " ") + "\n";
  out += "  set -l path ''\n  set -l skip 0\n  for w in (commandline -opc)[2..-1]\n";
  out += "    if test $skip = 1\n      set skip 0\n      continue\n    end\n";
  out +=
      "    if string match -q -- '-*' $w\n      contains -- $w $takes_value; and set skip 1\n      continue\n    end\n";
  out += "    set -l next (string trim -- \"$path $w\")\n    contains -- $next $known; and set path $next\n  end\n";
  out += "  echo $path\nend\n\n";
  out += "complete -c fleetkey -f\n";
  const Command& top = cmds.front();
  for (const auto& c : cmds) {
    const std::string cond = fmt::format("-n 'test (__fleetkey_path) = \"{}\"'", c.path);
    for (const auto& s : c.subcommands) {
      std::string help;
      for (const auto& cc : cmds) {
        if (cc.path == (c.path.empty() ? s : c.path + " " + s)) {
          help = cc.help;
        }
      }
      out += fmt::format("complete -c fleetkey {} -a {} -d {}\n", cond, fish_escape(s), fish_escape(help));
    }
    for (const auto* cc : {&c, &top}) {
      for (const auto& o : cc->options) {
        if (o.positional || (cc != &c && o.names.back() == "--help")) {
          if (o.positional && (o.names[0] == "FILE")) {
            out += fmt::format("complete -c fleetkey {} -F\n", cond);
          }
          continue;
        }
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
          } else {
            line += " -x";
          }
        }
        line += " -d " + fish_escape(o.help);
        out += line + "\n";
      }
      if (&c == &top) {
        break;
      }
    }
  }
  return out;
}

std::string read(const std::string& path)
{
  std::ifstream in(path, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

} // namespace

int main(int argc, char** argv)
{
  if (argc != 3 || (std::string(argv[1]) != "--write" && std::string(argv[1]) != "--check")) {
    std::cerr << "usage: fleetkey-gendocs --write|--check SOURCE_DIR\n";
    return 2;
  }
  const bool write = std::string(argv[1]) == "--write";
  const std::string dir = argv[2];
  Context ctx;
  auto app = fleetkey::cmd::build_app(ctx);
  std::vector<Command> cmds;
  collect(app.get(), "", cmds);

  std::map<std::string, std::string> files;
  files["completions/fleetkey.bash"] = bash(cmds);
  files["completions/_fleetkey"] = zsh(cmds);
  files["completions/fleetkey.fish"] = fish(cmds);
  const std::string man_path = "man/fleetkey.1";
  std::string man = read(dir + "/" + man_path);
  const auto begin = man.find(".\\\" BEGIN GENERATED COMMAND REFERENCE");
  const std::string end_marker = ".\\\" END GENERATED COMMAND REFERENCE\n";
  const auto end = man.find(end_marker);
  if (begin == std::string::npos || end == std::string::npos || end < begin) {
    std::cerr << "fleetkey-gendocs: " << man_path << " has no GENERATED COMMAND REFERENCE markers\n";
    return 1;
  }
  files[man_path] = man.substr(0, begin) + man_reference(cmds) + man.substr(end + end_marker.size());

  int drift = 0;
  for (const auto& [rel, content] : files) {
    const std::string path = dir + "/" + rel;
    if (read(path) == content) {
      continue;
    }
    if (write) {
      std::ofstream(path, std::ios::binary) << content;
      std::cout << "wrote " << rel << "\n";
    } else {
      std::cerr << "fleetkey-gendocs: " << rel << " is out of date with the CLI: run `make docs`\n";
      drift = 1;
    }
  }
  return drift;
}
