/**
 * The report of `matrix-egress check`: its steps and their JSON shape, the recorder that times them,
 * and the human rendering (progress while it runs, a summary at the end).
 * @module
 */
import { performance } from 'node:perf_hooks';
import type { ProxyTlsReason } from '../../errors.js';
import { formatRows, type CliOutput } from '../output.js';
import { codeOf, type CertificateSummary } from './probe.js';

/** Every step `check` can report, in the order they run. A run reports the ones of its route. */
export const CHECK_STEPS = [
  'configuration',
  'route',
  'DNS',
  'IP blocklist',
  'TCP to proxy',
  'TLS to proxy',
  'SOCKS greeting',
  'proxy authentication',
  'CONNECT',
  'SOCKS CONNECT',
  'forwarded request',
  'TCP to origin',
  'TLS to origin',
  'HTTP status',
] as const;

/** The name of a step. */
export type CheckStepName = (typeof CHECK_STEPS)[number];

/** How a step ended. `skipped`: it does not apply to this route, or an earlier step failed. */
export type CheckStepStatus = 'ok' | 'failed' | 'skipped';

/** Why a step failed. */
export interface CheckStepError {
  /** A library code (`ERR_EGRESS_PROXY_TLS`, …) where the library would throw that error, else Node's (`ECONNREFUSED`, `CERT_HAS_EXPIRED`, …). */
  readonly code: string;
  /** One line, credentials redacted. */
  readonly message: string;
  /** TLS failures: self-signed, unknown-ca, hostname-mismatch, expired or other. */
  readonly reason?: ProxyTlsReason;
  /** Node's own code under a library code (`ECONNREFUSED` under `ERR_EGRESS_PROXY_UNREACHABLE`). */
  readonly systemCode?: string;
  /** The realm of a 407 challenge. */
  readonly realm?: string;
  /** What to change, in one line. */
  readonly hint: string;
}

/** One step of the report. */
export interface CheckStep {
  readonly name: CheckStepName;
  readonly status: CheckStepStatus;
  /** Milliseconds the step took. Steps judged from one answer (proxy authentication, CONNECT, forwarded request, HTTP status) share its time. */
  readonly ms: number;
  /** One line for people. */
  readonly detail: string;
  /** Labelled facts: the configuration read, a certificate's subject/issuer/notBefore/notAfter/names/sha256. */
  readonly info?: Readonly<Record<string, string>>;
  /** The HTTP status the step is about. */
  readonly statusCode?: number;
  readonly error?: CheckStepError;
}

/** The `--json` document. */
export interface CheckReport {
  /** True when every step that ran succeeded (exit status 0). */
  readonly ok: boolean;
  readonly type: string;
  /** The URL as parsed, user information replaced by `***`. */
  readonly url: string;
  /** `null` when the configuration could not be read. */
  readonly route: 'proxy' | 'direct' | null;
  /** The proxy as `scheme://host:port`, never with credentials; `null` when direct. */
  readonly proxy: string | null;
  /** The time limit of each step, in milliseconds. */
  readonly timeoutMs: number;
  /** Milliseconds for the whole check. */
  readonly ms: number;
  readonly failedStep: CheckStepName | null;
  /** The failed step's hint, or `null`. */
  readonly hint: string | null;
  readonly steps: readonly CheckStep[];
}


/** Receives each step as it starts and ends (human mode). */
export interface Progress {
  start(name: CheckStepName): void;
  end(step: CheckStep): void;
}

/** A step that failed: what to record. Thrown by step bodies, caught by {@link Recorder.step}. */
export class StepFailure extends Error {
  readonly failure: { readonly detail: string; readonly error: CheckStepError; readonly info?: Readonly<Record<string, string>>; readonly statusCode?: number };
  constructor(failure: StepFailure['failure']) {
    super(failure.error.message);
    this.failure = failure;
  }
}

/** Thrown once a step has failed, to stop the run. */
export class Stop extends Error {}

/** What a successful step body returns. */
export interface StepOutcome<T> {
  readonly value: T;
  readonly detail: string;
  readonly info?: Readonly<Record<string, string>> | undefined;
  readonly statusCode?: number;
}

/** Collects the steps of one run, times them, and tells the progress display. */
export class Recorder {
  readonly steps: CheckStep[] = [];
  /** The steps this route will report, in order. */
  plan: readonly CheckStepName[] = ['configuration', 'route'];
  failed: CheckStep | undefined;
  readonly #progress: Progress | undefined;
  #announced: CheckStepName | undefined;

  constructor(progress: Progress | undefined) {
    this.#progress = progress;
  }

  /** Run one step: time it, record how it ended, and throw {@link Stop} when it failed. */
  async step<T>(name: CheckStepName, body: () => Promise<StepOutcome<T>> | StepOutcome<T>): Promise<T> {
    this.#progress?.start(name);
    const started = performance.now();
    try {
      const outcome = await body();
      this.#record(name, started, outcome);
      return outcome.value;
    } catch (error) {
      this.#fail(name, started, error);
      throw new Stop();
    }
  }

  /**
   * Show that a step judged from an answer has started (the request is on its way); it ends with
   * {@link Recorder.judged} or {@link Recorder.judgedFailure} once the answer is in.
   */
  announce(name: CheckStepName): void {
    this.#start(name);
    this.#announced = name;
  }

  /** Record a step judged from an answer already received, with that answer's time. */
  judged(step: CheckStep & { readonly status: 'ok' | 'skipped' }): void {
    this.#start(step.name);
    this.#push(step);
  }

  /** Record a failed step judged from an answer already received, and stop the run. */
  judgedFailure(step: Omit<CheckStep, 'status'>): never {
    const failed: CheckStep = { ...step, status: 'failed' };
    this.#start(step.name);
    this.failed = failed;
    this.#push(failed);
    throw new Stop();
  }

  /** Record a step that does not apply. */
  skip(name: CheckStepName, detail: string): void {
    this.#start(name);
    this.#push({ name, status: 'skipped', ms: 0, detail });
  }

  /** Tell the progress display a step starts, unless {@link Recorder.announce} already did. */
  #start(name: CheckStepName): void {
    if (this.#announced === name) {
      this.#announced = undefined;
      return;
    }
    this.#progress?.start(name);
  }

  /** After a failure: every planned step not run yet, as skipped. */
  finish(): void {
    if (this.failed === undefined) return;
    const done = new Set(this.steps.map((s) => s.name));
    for (const name of this.plan) {
      if (!done.has(name)) this.skip(name, `not run: ${this.failed.name} failed`);
    }
  }

  #record<T>(name: CheckStepName, started: number, outcome: StepOutcome<T>): void {
    this.#push({
      name,
      status: 'ok',
      ms: elapsed(started),
      detail: outcome.detail,
      ...(outcome.info !== undefined && { info: outcome.info }),
      ...(outcome.statusCode !== undefined && { statusCode: outcome.statusCode }),
    });
  }

  #fail(name: CheckStepName, started: number, error: unknown): void {
    const failure =
      error instanceof StepFailure
        ? error.failure
        : {
            // Not ours to vouch for: hide anything shaped like URL userinfo, as main.ts does.
            detail: 'unexpected error, please report it',
            error: {
              code: codeOf(error) ?? 'ERR_UNEXPECTED',
              message: oneLine(error instanceof Error ? `${error.name}: ${error.message}` : String(error)).replace(/[^\s/@]*@/g, '***@'),
              hint: 'This is a bug in matrix-egress check; please report it with the output above.',
            },
          };
    const step: CheckStep = {
      name,
      status: 'failed',
      ms: elapsed(started),
      detail: failure.detail,
      ...(failure.info !== undefined && { info: failure.info }),
      ...(failure.statusCode !== undefined && { statusCode: failure.statusCode }),
      error: failure.error,
    };
    this.failed = step;
    this.#push(step);
  }

  #push(given: CheckStep): void {
    // One key order for every step of the JSON document, whichever way the step was built.
    const step: CheckStep = {
      name: given.name,
      status: given.status,
      ms: given.ms,
      detail: given.detail,
      ...(given.info !== undefined && { info: given.info }),
      ...(given.statusCode !== undefined && { statusCode: given.statusCode }),
      ...(given.error !== undefined && { error: given.error }),
    };
    this.steps.push(step);
    this.#progress?.end(step);
  }
}

/** Whole milliseconds since `started` (a `performance.now()` reading). */
export function elapsed(started: number): number {
  return Math.round(performance.now() - started);
}

/** `text` with its line breaks folded into spaces, for one-line messages. */
function oneLine(text: string): string {
  return text.replace(/\s*[\r\n]+\s*/g, ' ');
}

/** The fields of a {@link CheckStepError}; the optional ones may be given as `undefined`. */
export interface StepErrorFields {
  readonly code: string;
  readonly message: string;
  readonly hint: string;
  readonly reason?: ProxyTlsReason | undefined;
  readonly systemCode?: string | undefined;
  readonly realm?: string | undefined;
}

/** `error` fields with the optional ones only when set, the message on one line. */
export function stepError(fields: StepErrorFields): CheckStepError {
  return {
    code: fields.code,
    message: oneLine(fields.message),
    ...(fields.reason !== undefined && { reason: fields.reason }),
    ...(fields.systemCode !== undefined && fields.systemCode !== fields.code && { systemCode: fields.systemCode }),
    ...(fields.realm !== undefined && { realm: fields.realm }),
    hint: fields.hint,
  };
}

/** A {@link StepFailure} to throw from a step body. */
export function fail(detail: string, error: StepErrorFields, extra: { info?: Readonly<Record<string, string>> | undefined; statusCode?: number } = {}): StepFailure {
  return new StepFailure({
    detail,
    error: stepError(error),
    ...(extra.info !== undefined && { info: extra.info }),
    ...(extra.statusCode !== undefined && { statusCode: extra.statusCode }),
  });
}

/** A certificate as the `info` rows of a TLS step. */
export function certificateInfo(certificate: CertificateSummary | undefined): Readonly<Record<string, string>> | undefined {
  if (certificate === undefined) return undefined;
  return {
    subject: certificate.subject,
    issuer: certificate.issuer,
    notBefore: certificate.notBefore,
    notAfter: certificate.notAfter,
    names: certificate.names === '' ? '(none)' : certificate.names,
    sha256: certificate.sha256,
  };
}


// --- human output ------------------------------------------------------------

const LABEL_WIDTH = Math.max(...CHECK_STEPS.map((name) => name.length)) + 3;

/** Human mode: each step's label when it starts, the rest of its line (and its `info` rows) when it ends. */
export function humanProgress(out: CliOutput, heading: string): Progress {
  out.write(`${heading}\n\n`);
  return {
    start(name) {
      out.write(`${name} ${'.'.repeat(LABEL_WIDTH - name.length - 1)} `);
    },
    end(step) {
      const ms = step.status === 'skipped' && step.ms === 0 ? '' : `${String(step.ms)} ms`;
      out.write(`${step.status.padEnd(8)}${ms.padStart(8)}  ${step.detail}\n`);
      if (step.info !== undefined) {
        const rows = Object.entries(step.info);
        out.write(
          formatRows(rows)
            .split('\n')
            .filter((line) => line !== '')
            .map((line) => `    ${line}\n`)
            .join(''),
        );
      }
    },
  };
}

/** The closing lines of human mode: OK, or the failed step with its hint. */
export function summary(report: CheckReport): string {
  const failed = report.steps.find((step) => step.status === 'failed');
  if (failed === undefined) {
    const status = [...report.steps].reverse().find((step) => step.statusCode !== undefined);
    const via = report.proxy === null ? 'directly' : `through ${report.proxy}`;
    return `\nOK: the ${report.type} connection to ${report.url} works: it answered ${status?.statusCode === undefined ? '' : `${String(status.statusCode)} `}${via} (${String(report.ms)} ms in all)\n`;
  }
  const error = failed.error;
  return `\nFAILED at step "${failed.name}": ${error?.message ?? failed.detail}\nhint: ${error?.hint ?? ''}\n`;
}
