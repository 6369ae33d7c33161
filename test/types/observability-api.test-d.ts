// Type tests of the observability surface (issue 16): the channels, their payloads, egress.stats()
// and matrix-egress/prometheus. Checked by `npm run typecheck`, never executed.
import { expectTypeOf } from 'expect-type';
import type { Registry } from 'prom-client';
import {
  BlockedDestinationError,
  createEgress,
  EGRESS_CHANNELS,
  type BlockedEvent,
  type ConnectionType,
  type ConnectionTypeStats,
  type EgressApi,
  type EgressStats,
  type RequestFinishEvent,
  type RequestOutcome,
  type Route,
  type RouteEvent,
  type RouteReasonCode,
  type RouteStats,
  type TunnelCloseEvent,
  type TunnelErrorEvent,
  type TunnelOpenEvent,
  type TunnelStats,
} from '../../src/index.js';
import {
  DEFAULT_DURATION_BUCKETS,
  EGRESS_METRIC_NAMES,
  registerEgressMetrics,
  type EgressMetrics,
  type EgressMetricsOptions,
} from '../../src/prometheus/index.js';

// Channel names are literal types.
expectTypeOf(EGRESS_CHANNELS.route).toEqualTypeOf<'matrix-egress:route'>();
expectTypeOf(EGRESS_CHANNELS.requestFinish).toEqualTypeOf<'matrix-egress:request:finish'>();
expectTypeOf(EGRESS_CHANNELS.tunnelOpen).toEqualTypeOf<'matrix-egress:tunnel:open'>();
expectTypeOf(EGRESS_CHANNELS.tunnelError).toEqualTypeOf<'matrix-egress:tunnel:error'>();
expectTypeOf(EGRESS_CHANNELS.tunnelClose).toEqualTypeOf<'matrix-egress:tunnel:close'>();
expectTypeOf(EGRESS_CHANNELS.blocked).toEqualTypeOf<'matrix-egress:blocked'>();
// @ts-expect-error -- the names are read-only
EGRESS_CHANNELS.route = 'other';

// Payloads
expectTypeOf<RouteEvent['route']>().toEqualTypeOf<Route>();
expectTypeOf<RouteEvent['reasonCode']>().toEqualTypeOf<RouteReasonCode>();
expectTypeOf<RouteEvent['proxy']>().toEqualTypeOf<string | null>();
expectTypeOf<RouteEvent['api']>().toEqualTypeOf<EgressApi>();
expectTypeOf<RequestFinishEvent['route']>().toEqualTypeOf<Route | null>();
expectTypeOf<RequestFinishEvent['outcome']>().toEqualTypeOf<RequestOutcome>();
expectTypeOf<RequestFinishEvent['statusCode']>().toEqualTypeOf<number | null>();
expectTypeOf<RequestFinishEvent['errorCode']>().toEqualTypeOf<string | null>();
expectTypeOf<RequestFinishEvent['type']>().toEqualTypeOf<ConnectionType>();
expectTypeOf<TunnelOpenEvent>().toEqualTypeOf<TunnelCloseEvent>();
expectTypeOf<TunnelErrorEvent['errorCode']>().toBeString();
expectTypeOf<BlockedEvent['rule']>().toEqualTypeOf<string | null>();
expectTypeOf<'blocked'>().toExtend<RequestOutcome>();
// @ts-expect-error -- no request path in a payload
expectTypeOf<RequestFinishEvent['path']>().toBeString();

// egress.stats()
const egress = createEgress({ env: {} });
expectTypeOf(egress.stats()).toEqualTypeOf<EgressStats>();
expectTypeOf<EgressStats['types'][string]>().toEqualTypeOf<ConnectionTypeStats>();
expectTypeOf<ConnectionTypeStats['none']>().toEqualTypeOf<RouteStats>();
expectTypeOf<RouteStats['requests']>().toBeNumber();
expectTypeOf<EgressStats['tunnels']>().toEqualTypeOf<TunnelStats>();
expectTypeOf<EgressStats['pooledConnections']>().toEqualTypeOf<Readonly<Record<Route, number>>>();
expectTypeOf(new BlockedDestinationError('h', '10.0.0.1').rule).toEqualTypeOf<string | null>();

// matrix-egress/prometheus
declare const registry: Registry;
expectTypeOf(registerEgressMetrics(egress, registry)).toEqualTypeOf<EgressMetrics>();
expectTypeOf(registerEgressMetrics(egress)).toEqualTypeOf<EgressMetrics>();
expectTypeOf(registerEgressMetrics).parameter(2).toEqualTypeOf<EgressMetricsOptions | undefined>();
expectTypeOf(registerEgressMetrics(egress, registry, { buckets: [0.1, 1] }).names).toEqualTypeOf<readonly string[]>();
expectTypeOf(DEFAULT_DURATION_BUCKETS).toEqualTypeOf<readonly number[]>();
expectTypeOf(EGRESS_METRIC_NAMES.requests).toEqualTypeOf<'matrix_egress_requests_total'>();
// @ts-expect-error -- the egress comes first
registerEgressMetrics(registry, egress);
// @ts-expect-error -- buckets are numbers
registerEgressMetrics(egress, registry, { buckets: ['1'] });
