/// The CLI's commands that render what Portway would do (`translate`, `routes`, `explain`): the
/// logic and its output formats live here, tested without the binary; `portway` parses flags and
/// calls them. JSON contracts: docs/CLI-JSON.md.
public enum Command {}
