-- wrk script: POST a 64 KiB raw body (application/octet-stream) on every request.
wrk.method = "POST"
wrk.body = string.rep("b", 65536)
wrk.headers["Content-Type"] = "application/octet-stream"
