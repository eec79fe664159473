"""The user documentation (docs/) against the code, so that neither drifts silently: every option
of `mocksrv --help` (and of main.c's option table) is documented in docs/mocksrv.1's OPTIONS,
every key the scenario loader accepts (the key tables of mocksrv/scenario*.c) is in docs/scenario.md or
docs/faults.md, every fixed value name (protocols, TLS modes, fault events ...) is mentioned,
every event the server emits has its section in docs/events.md, every example of
fixtures/faults/ is named in docs/faults.md, and README.md points to docs/ only."""
import glob
import os
import re
import subprocess
import sys
import unittest

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "support"))
from mocksrv_harness import ROOT, binary  # noqa: E402

DOCS = os.path.join(ROOT, "docs")
SRC = os.path.join(ROOT, "mocksrv")


def read(*parts):
    with open(os.path.join(ROOT, *parts), encoding="utf-8") as f:
        return f.read()


def has_token(text, token):
    """token appears in text, not as part of a longer word or option."""
    return re.search(r"(?<![\w-])" + re.escape(token) + r"(?![\w-])", text) is not None


def roff_text(src):
    """The words of a roff source: font escapes dropped, \\- and \\e as the characters."""
    src = re.sub(r"\\f(\[[^\]]*\]|\(..|.)", "", src)
    return src.replace("\\-", "-").replace("\\e", "\\").replace("\\(aq", "'")


def roff_section(src, name):
    m = re.search(r"^\.SH " + re.escape(name) + r"\s*$(.*?)(?=^\.SH |\Z)", src, re.M | re.S)
    return m.group(1) if m else ""


def help_options():
    r = subprocess.run([binary(), "--help"], stdin=subprocess.DEVNULL, capture_output=True,
                       timeout=10)
    assert r.returncode == 0, r
    text = r.stdout.decode()
    return set(re.findall(r"(?<![\w-])(--?[A-Za-z][\w-]*)", text))


def main_c_options():
    """The long options of main.c's getopt table and the short ones of its optstring."""
    src = read("mocksrv", "cli", "main.c")
    longs = set("--" + n for n in re.findall(r'\{"([a-z][\w-]*)",\s*(?:no|required|optional)_argument',
                                             src))
    m = re.search(r'getopt_long\([^,]+,[^,]+,\s*"([^"]*)"', src)
    shorts = set("-" + c for c in (m.group(1) if m else "") if c.isalpha())
    return longs | shorts


def scenario_source():
    """The scenario loader's files together: scenario*.c and scenario*.h of mocksrv/."""
    parts = sorted(glob.glob(os.path.join(SRC, "scenario*.[ch]")))
    return "\n".join(read("mocksrv", os.path.basename(p)) for p in parts)


def scenario_tables():
    """{table name: [keys]} of every key table (struct scenario_field NAME[]) of the loader."""
    src = scenario_source()
    tables = {}
    for m in re.finditer(r"static const struct scenario_field (\w+)\[\] = \{(.*?)\n\};", src, re.S):
        tables[m.group(1)] = re.findall(r'(?:F_\w+\(|\.key = )"(\w+)"', m.group(2))
    return tables


def scenario_names():
    """{table name: [names]} of the fixed value names (struct scenario_name NAME[]) of the loader."""
    src = scenario_source()
    names = {}
    for m in re.finditer(r"static const struct scenario_name (\w+)\[\] = \{(.*?)\};", src, re.S):
        names[m.group(1)] = [n.encode().decode("unicode_escape")
                             for n in re.findall(r'\{"((?:[^"\\]|\\.)*)",', m.group(2))]
    return names


class ManPageTest(unittest.TestCase):
    def setUp(self):
        self.src = read("docs", "mocksrv.1")
        self.options = roff_text(roff_section(self.src, "OPTIONS"))

    def test_help_options_are_in_the_man_page(self):
        opts = help_options()
        # the help lists about twenty options; far fewer means the extraction broke
        self.assertGreaterEqual(len(opts), 18, sorted(opts))
        missing = sorted(o for o in opts if not has_token(self.options, o))
        self.assertEqual(missing, [], "options of --help missing from docs/mocksrv.1 OPTIONS")

    def test_main_c_options_are_in_help_and_man_page(self):
        opts = main_c_options()
        self.assertGreaterEqual(len(opts), 18, sorted(opts))
        helped = help_options()
        self.assertEqual(sorted(opts - helped - {"-h"}), [],
                         "options of main.c missing from --help")
        missing = sorted(o for o in opts if not has_token(self.options, o))
        self.assertEqual(missing, [], "options of main.c missing from docs/mocksrv.1 OPTIONS")

    def test_exit_statuses_and_signals(self):
        exits = roff_text(roff_section(self.src, "EXIT STATUS"))
        for status in ("0", "1", "2", "3"):
            self.assertRegex(exits, r"(?m)^\.B %s$" % status)
        signals = roff_text(roff_section(self.src, "SIGNALS"))
        for sig in ("SIGTERM", "SIGINT", "SIGHUP"):
            self.assertIn(sig, signals)
        env = roff_text(roff_section(self.src, "ENVIRONMENT"))
        for var in re.findall(r'"(MOCKSRV_[A-Z_]+)"', read("mocksrv", "cli", "main.c")):
            if var.endswith("_") or var in ("MOCKSRV_",):
                continue
            self.assertIn(var, env)


class ScenarioDocTest(unittest.TestCase):
    def setUp(self):
        self.scenario = read("docs", "scenario.md")
        self.faults = read("docs", "faults.md")

    def test_top_level_keys(self):
        keys = scenario_tables().get("scenario_top_fields", [])
        self.assertGreaterEqual(len(keys), 10, keys)
        # each has a row of the top-level table: | `key` |
        missing = [k for k in keys if not re.search(r"(?m)^\| `%s` \|" % re.escape(k),
                                                     self.scenario)]
        self.assertEqual(missing, [], "top-level scenario keys missing from docs/scenario.md")

    def test_every_key_of_every_table(self):
        tables = scenario_tables()
        self.assertGreaterEqual(len(tables), 15, sorted(tables))
        missing = []
        for table, keys in tables.items():
            fault_side = re.search(r"fault|split|read|tarpit|close|tls_stall|expect", table)
            doc = self.faults if fault_side else self.scenario
            for k in keys:
                if "`%s`" % k not in doc:
                    missing.append("%s.%s" % (table, k))
        self.assertEqual(missing, [], "scenario keys missing from docs/scenario.md or faults.md")

    def test_every_value_name(self):
        names = scenario_names()
        self.assertGreaterEqual(len(names), 10, sorted(names))
        both = self.scenario + self.faults
        missing = ["%s: %s" % (t, n) for t, ns in names.items() for n in ns
                   if not has_token(both, n)]
        self.assertEqual(missing, [], "value names missing from docs/scenario.md or faults.md")

    def test_fault_examples_are_named(self):
        files = sorted(os.path.basename(p)
                       for p in glob.glob(os.path.join(ROOT, "fixtures", "faults", "*.yaml")))
        self.assertGreater(len(files), 5)
        self.assertEqual([f for f in files if "`%s`" % f not in self.faults], [],
                         "fixtures/faults examples not named in docs/faults.md")


class EventsDocTest(unittest.TestCase):
    def test_every_event_has_a_section(self):
        emitted = set()
        for path in glob.glob(os.path.join(SRC, "*.c")):
            with open(path, encoding="utf-8") as f:
                src = f.read()
            emitted.update(re.findall(r'ms_session_event\(\w+, "([\w.]+)"\)', src))
            emitted.update(re.findall(r'ms_event_new\([^,]+, "([\w.]+)"', src))
        self.assertGreaterEqual(len(emitted), 10, sorted(emitted))
        headings = "\n".join(re.findall(r"(?m)^#{2,3} .*$", read("docs", "events.md")))
        self.assertEqual(sorted(e for e in emitted if not has_token(headings, e)), [],
                         "events without a section in docs/events.md")
        self.assertIn("ready line", headings)


class ReadmeTest(unittest.TestCase):
    def test_points_to_docs_only(self):
        readme = read("README.md")
        for word in ("../shared", "SPEC.md", "FAULTS.md", "DESIGN.md", "shared/"):
            self.assertFalse(word in readme, "README.md mentions %s" % word)
        for doc in ("docs/scenario.md", "docs/faults.md", "docs/events.md",
                    "docs/ARCHITECTURE.md"):
            self.assertIn(doc, readme)
            self.assertTrue(os.path.exists(os.path.join(ROOT, doc)), doc)


if __name__ == "__main__":
    unittest.main()
