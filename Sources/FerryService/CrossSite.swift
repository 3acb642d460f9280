import Foundation
import HTTPTypes
import Hummingbird

/// Where a browser says a request comes from. `Sec-Fetch-Site` names it (anything but `same-origin`
/// or `none` is another site), and `Origin` must name the host the browser asked: the request's own,
/// or `X-Forwarded-Host` when the Frontend passed the request on. Scripts send neither header.
public enum CrossSite {
    /// Whether the browser says the request comes from elsewhere.
    public static func isCrossSite(_ request: Request) -> Bool {
        if let site = request.headers[HTTPField.Name("Sec-Fetch-Site")!]?.lowercased(), site != "same-origin", site != "none" {
            return true
        }
        guard let origin = request.headers[HTTPField.Name("Origin")!] else { return false }
        guard origin != "null", let url = URLComponents(string: origin), let host = url.host, url.scheme == "http" || url.scheme == "https" else { return true }
        let originAuthority = (host + (url.port.map { ":\($0)" } ?? "")).lowercased()
        let asked = (request.headers[HTTPField.Name("X-Forwarded-Host")!] ?? request.head.authority ?? "").lowercased()
        return originAuthority != asked && originAuthority != Self.withoutDefaultPort(asked, scheme: url.scheme)
    }

    /// `host:80` for http and `host:443` for https name the same origin as `host`.
    private static func withoutDefaultPort(_ authority: String, scheme: String?) -> String {
        let suffix = scheme == "https" ? ":443" : ":80"
        return authority.hasSuffix(suffix) ? String(authority.dropLast(suffix.count)) : authority
    }
}
