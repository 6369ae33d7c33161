// Public entry of matrix-egress: named re-exports only.
export { createEgress } from './egress.js';
export type { Egress, EgressRequestInit } from './egress.js';
export type { ConnectTarget } from './fetch/connect-to.js';
export { compileEgressConfig, configToJSON, DEFAULT_CONNECT_TIMEOUT } from './config/compile.js';
export type { CaInput, ConfigSources, ConnectionTypeOptions, EgressConfig, EgressLogger, EgressOptions } from './config/compile.js';
export type { CompiledProxyRule, ProxyRuleOptions } from './config/compile.js';
export { readProxyEnv } from './config/env.js';
export type { EnvRecord, RawEnvValue, RawProxyEnv } from './config/env.js';
export { parseProxyUrl, ProxyEndpoint, DEFAULT_PROXY_PORT } from './config/proxy-url.js';
export type { ProxyProtocol } from './config/proxy-url.js';
export { compileNoProxy, NoProxyMatcher } from './config/no-proxy.js';
export type { NoProxyRule } from './config/no-proxy.js';
export type { NoProxyCompileOptions, NoProxySkippedEntry } from './config/no-proxy.js';
export { loadEgressConfigFile } from './config/config-file.js';
export { targetFromUrl } from './match/target.js';
export type { Target } from './match/target.js';
export { DIRECT_CONNECTION_TYPES, PROXIED_CONNECTION_TYPES } from './policy/connection-types.js';
export type { BuiltInConnectionType, ConnectionType, ConnectionTypePolicy, ProxySelection, Route } from './policy/connection-types.js';
export { route } from './policy/route.js';
export type { RouteDecision, RouteReasonCode } from './policy/route.js';
export type { MatchedProxyRule } from './policy/route.js';
export { DEFAULT_IP_BLOCKLIST } from './ssrf/default-blocklist.js';
export type { BlockedAddress, IpFilter } from './ssrf/ip-filter.js';
export type { IpRange, IpRangeSet } from './ssrf/ip-set.js';
export {
  BlockedDestinationError,
  EgressClosedError,
  EgressError,
  ForbiddenHeaderError,
  HeaderInjectionError,
  HeadersTimeoutError,
  InvalidUrlError,
  ProxyAuthenticationError,
  ProxyConfigError,
  ProxyConnectError,
  ProxyProtocolError,
  ProxyTlsError,
  ProxyUnreachableError,
  UnknownConnectionTypeError,
  hasEgressCode,
  isEgressError,
} from './errors.js';
export { SOCKS5_REPLY_NAMES } from './errors.js';
export type { EgressErrorByCode, EgressErrorCode, ProxyTlsReason } from './errors.js';
export { redactUrl } from './redact.js';
export { EGRESS_CHANNELS } from './observability/channels.js';
export type {
  BlockedEvent,
  EgressApi,
  RequestFinishEvent,
  RequestOutcome,
  RouteEvent,
  TunnelCloseEvent,
  TunnelErrorEvent,
  TunnelOpenEvent,
} from './observability/channels.js';
export type { ConnectionTypeStats, EgressStats, RouteStats, TunnelStats } from './observability/stats.js';
