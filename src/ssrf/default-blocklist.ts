/**
 * The default IP blocklist (SPEC §8): every range that is not a public unicast destination, from the
 * IANA IPv4 and IPv6 Special-Purpose Address Registries (RFC 6890) and Synapse's
 * `DEFAULT_IP_RANGE_BLOCKLIST`.
 * @module
 */

/**
 * The ranges direct connections of checked connection types may not reach unless `ipAllowlist`
 * names them. The default of the `ipBlocklist` option; extend it with
 * `[...DEFAULT_IP_BLOCKLIST, '203.0.113.7']`.
 *
 * IPv6 forms of IPv4 addresses need no entries of their own, here or in a custom list: the check
 * reads an IPv4-mapped address (`::ffff:a.b.c.d`) as its IPv4 address, and blocks an
 * IPv4-compatible (`::a.b.c.d`), 6to4 (`2002:AABB:CCDD::/48`) or NAT64 (`64:ff9b::a.b.c.d`) address
 * whose embedded IPv4 address is blocked (Synapse's `generate_ip_set` adds the same forms).
 */
export const DEFAULT_IP_BLOCKLIST: readonly string[] = Object.freeze([
  // IPv4
  '0.0.0.0/8', // "this network" (RFC 791 §3.2); Linux connects 0.0.0.0 to the local host
  '10.0.0.0/8', // private (RFC 1918)
  '100.64.0.0/10', // shared address space, carrier-grade NAT (RFC 6598)
  '127.0.0.0/8', // loopback (RFC 1122 §3.2.1.3)
  '169.254.0.0/16', // link-local (RFC 3927), where cloud metadata services answer
  '172.16.0.0/12', // private (RFC 1918)
  '192.0.0.0/24', // IETF protocol assignments (RFC 6890 §2.2.2)
  '192.0.2.0/24', // documentation, TEST-NET-1 (RFC 5737)
  '192.88.99.0/24', // former 6to4 relay anycast (RFC 7526)
  '192.168.0.0/16', // private (RFC 1918)
  '198.18.0.0/15', // benchmarking (RFC 2544)
  '198.51.100.0/24', // documentation, TEST-NET-2 (RFC 5737)
  '203.0.113.0/24', // documentation, TEST-NET-3 (RFC 5737)
  '224.0.0.0/4', // multicast (RFC 5771)
  '240.0.0.0/4', // reserved (RFC 1112 §4), with the limited broadcast 255.255.255.255 (RFC 919)
  // IPv6
  '::/128', // unspecified (RFC 4291 §2.5.2)
  '::1/128', // loopback (RFC 4291 §2.5.3)
  '64:ff9b:1::/48', // local-use NAT64 (RFC 8215): translates into the operator's own networks
  '100::/64', // discard-only (RFC 6666)
  '2001::/32', // Teredo (RFC 4380): a client-side tunnel whose embedded addresses point anywhere
  '2001:2::/48', // benchmarking (RFC 5180)
  '2001:db8::/32', // documentation (RFC 3849)
  '2002::/16', // 6to4 (RFC 3056), deprecated (RFC 7526): the relay reaches whatever IPv4 address is embedded
  '3fff::/20', // documentation (RFC 9637)
  '5f00::/16', // segment routing SIDs (RFC 9602)
  'fc00::/7', // unique local (RFC 4193)
  'fe80::/10', // link-local (RFC 4291 §2.5.6)
  'fec0::/10', // site-local, deprecated (RFC 3879)
  'ff00::/8', // multicast (RFC 4291 §2.7)
]);
