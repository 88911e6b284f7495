# The healthcheck: the listing answers, and no /tmp/unhealthy switch is set (a restart clears /tmp).
require "net/http"

exit 1 if File.exist?("/tmp/unhealthy")
res = Net::HTTP.get_response(URI("http://127.0.0.1/"))
exit(res.is_a?(Net::HTTPSuccess) ? 0 : 1)
