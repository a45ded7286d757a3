import CPortwayBuild

/// Portway's version, stamped at build time from the VERSION file ("dev" in an unstamped
/// `swift build`): `portway version`, the agent's start line, the User-Agent, a metric label.
public let portwayVersion = String(cString: portway_build_version())

/// The git commit the binary was built from ("unknown" in an unstamped build).
public let portwayCommit = String(cString: portway_build_commit())
