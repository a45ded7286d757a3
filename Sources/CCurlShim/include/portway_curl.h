#pragma once
#include <curl/curl.h>

/// Typed wrappers around the variadic curl_easy_setopt / curl_easy_getinfo, which Swift cannot call.
CURLcode portway_curl_setopt_long(CURL *handle, CURLoption option, long value);
CURLcode portway_curl_setopt_string(CURL *handle, CURLoption option, const char *value);
CURLcode portway_curl_setopt_pointer(CURL *handle, CURLoption option, void *value);
CURLcode portway_curl_setopt_slist(CURL *handle, CURLoption option, struct curl_slist *value);
CURLcode portway_curl_setopt_blob(CURL *handle, CURLoption option, void *data, size_t length);

typedef size_t (*portway_curl_data_callback)(char *data, size_t size, size_t nmemb, void *userdata);

CURLcode portway_curl_set_write_callback(CURL *handle, portway_curl_data_callback callback, void *userdata);
CURLcode portway_curl_set_header_callback(CURL *handle, portway_curl_data_callback callback, void *userdata);

CURLcode portway_curl_getinfo_long(CURL *handle, CURLINFO info, long *value);
