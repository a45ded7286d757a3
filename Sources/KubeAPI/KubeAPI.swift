import CCurlShim

/// The libcurl version string this binary runs with.
public func curlVersion() -> String { String(cString: curl_version()) }
