/// Portway's version (also the API client's User-Agent and the agent's start line).
public let portwayVersion = "0.1.0"
