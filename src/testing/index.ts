// The test kit, `matrix-egress/testing`: named re-exports only. Never imported by the main entry.
export { createRecordingProxy } from './recording-proxy.js';
export type {
  BasicCredentials,
  ConnectFailure,
  FailureInjection,
  ProxyAuthenticator,
  ProxyCall,
  ProxyCallOutcome,
  RecordingProxy,
  RecordingProxyOptions,
  TlsMaterial,
} from './recording-proxy.js';
export { createTestOrigin } from './test-origin.js';
export type { OriginHandler, OriginRequest, TestOrigin, TestOriginOptions } from './test-origin.js';
export { createSelfSignedCertificate, createTestCertificateAuthority } from './certificates.js';
export type { CertificateAndKey, IssueOptions, TestCertificateAuthority } from './certificates.js';
export type { CallCriteria, CallFieldCriterion, CallHistory, CallPredicate, FilterCallsOptions } from './call-history.js';
export {
  describeCall,
  expectDirect,
  expectForwarded,
  expectNoProxyAuthorizationAtOrigin,
  expectNotProxied,
  expectProxied,
  expectTunnel,
} from './assertions.js';
export type { ForwardedMatch, OriginRequestMatch, ProxyCallMatch } from './assertions.js';
export { createRecordingSocksProxy, socksReplyName } from './socks-proxy.js';
export type {
  RecordingSocksProxy,
  RecordingSocksProxyOptions,
  SocksAddressType,
  SocksAuthenticator,
  SocksCall,
  SocksCallOutcome,
  SocksConnectFailure,
  SocksCredentials,
  SocksFailureInjection,
} from './socks-proxy.js';
export { describeSocksCall, expectNoSocksCall, expectSocksAddress, expectSocksAuth, expectSocksName } from './socks-assertions.js';
export type { SocksAuthMatch, SocksCallMatch } from './socks-assertions.js';
export { createSrvResolver } from './srv-resolver.js';
export type { SrvErrorCode, TestSrvAnswer, TestSrvResolver } from './srv-resolver.js';
export { createHostsLookup } from './hosts.js';
export type { HostMap } from './hosts.js';
