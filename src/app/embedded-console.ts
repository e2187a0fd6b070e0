import { HandoffError } from '../contracts/errors.ts';
import { loadModel, type LoadedModel } from '../models/loader.ts';
import { ScaledClock, systemClock, type Clock, type ClockOrigin } from '../base/clock.ts';
import { serveCommands } from '../runtime/command-server.ts';
import { LevelStore } from '../runtime/level-store.ts';
import { ensureFolder } from '../base/data-folder.ts';
import { retentionOf, scheduleRetention } from '../retention/retention.ts';
import { Redactor } from '../inspect/redact.ts';
import type { Keyring } from '../security/keyring.ts';
import { backgroundRotation, type BackgroundRotation } from '../security/keys-rotation.ts';
import { Rng } from '../base/rng.ts';
import { Runtime } from '../runtime/runtime.ts';
import { LevelWorld } from '../runtime/world.ts';
import type { SessionOptions } from '../httpkit/auth.ts';
import { loadGatewayConfig } from '../gateway/oidc.ts';
import { LevelSessionStore } from '../httpkit/session-store.ts';
import { embeddedBackend } from '../gateway/backend.ts';
import { Gateway, type GatewayOptions } from '../gateway/server.ts';
import { embeddedApi } from '../gateway/api-v1-embedded.ts';
import type { ApiLimitsOptions } from '../gateway/api-limits.ts';
import { assembleReasoning } from '../runtime/reasoning.ts';
import { embeddedInspectorBackend } from '../inspect/backend.ts';
import { InspectionStream } from '../inspect/stream.ts';
import { StatelyBridge } from '../inspect/stately.ts';
import { WebhookNotifier } from '../notify/webhooks.ts';
import { createLogger } from '../runtime/logger.ts';
import type { ProcessTelemetry } from '../telemetry/process.ts';

/**
 * A background trickle of synthetic episodes (each model's `synthesize`), so a console started for a
 * demo has cases arriving. Arrivals are a Poisson process at `perMinute`; `burst` episodes start at once.
 */
export class DemoLoad {
  #rt: Runtime;
  #models: LoadedModel[];
  #rng: Rng;
  #gaps: Rng;
  #meanGapMs: number;
  #timer: NodeJS.Timeout | null = null;
  #n = 0;
  #run = Date.now().toString(36);
  #stopped = false;
  started = 0;

  constructor(rt: Runtime, opts: { perMinute: number; seed?: number }) {
    this.#rt = rt;
    this.#models = [...rt.models.values()];
    this.#rng = new Rng(opts.seed ?? Date.now());
    this.#gaps = new Rng((opts.seed ?? Date.now()) + 1);
    this.#meanGapMs = 60_000 / Math.max(opts.perMinute, 0.001);
  }

  start(burst: number): void {
    for (let i = 0; i < burst; i++) this.#one();
    this.#next();
  }

  #next(): void {
    if (this.#stopped) return;
    const gap = Math.max(20, Math.round(-Math.log(1 - this.#gaps.next()) * this.#meanGapMs));
    this.#timer = setTimeout(() => {
      this.#one();
      this.#next();
    }, gap);
    this.#timer.unref();
  }

  #one(): void {
    const i = this.#n++;
    const model = this.#models[i % this.#models.length]!;
    const signal = model.handlers.synthesize(this.#rng, i);
    const id = `load-${this.#run}-${String(i + 1).padStart(5, '0')}`;
    this.started++;
    this.#rt.startEpisode(model.name, signal, { episodeId: id }).catch((err: unknown) => {
      if (!(err instanceof HandoffError && err.code === 'runtime.stopped'))
        this.#rt.log.warn({ err, episode: id }, 'demo episode did not start');
    });
  }

  stop(): void {
    this.#stopped = true;
    if (this.#timer) clearTimeout(this.#timer);
  }
}

export interface ConsoleOptions {
  data: string;
  /** Data keys: seal the store's values at rest (docs/encryption.md). @default undefined (plaintext) */
  keyring?: Keyring | undefined;
  /** Drift-aware gating: tighten when reviewers keep overriding the agent. @default true */
  drift?: boolean;
  models: string[];
  /** Traces and metrics of this process (`OTEL_*`, `--metrics`); the caller starts and shuts it down. @default none */
  telemetry?: ProcessTelemetry | undefined;
  host?: string;
  port?: number;
  /**
   * Simulated ms per wall ms of the runtime's clock, so SLA deadlines and leases can be watched pass
   * in a demo (3600: an hour a second). Stored in the data folder: a later start continues that clock
   * (time never runs backwards for the stored deadlines); a different scale re-anchors it at its
   * current reading. @default 1 (the system clock; a folder started scaled keeps its scaled clock)
   */
  timeScale?: number;
  /** Synthetic episodes per minute in the background (0: none). */
  demoLoad?: number;
  /** Episodes started at once with the demo load. @default demoLoad, at most 500 */
  demoBurst?: number;
  demoSeed?: number;
  sessions?: SessionOptions;
  secureCookies?: boolean;
  allowedOrigins?: string[];
  /** HTTPS/WSS for the console, and plain HTTP off loopback (see `GatewayOptions`). */
  tls?: GatewayOptions['tls'];
  allowPlaintext?: boolean;
  /** Proxies whose X-Forwarded-For is believed (see `GatewayOptions.trustedProxies`). */
  trustedProxies?: GatewayOptions['trustedProxies'];
  /** Sign-in throttling (see `GatewayOptions.signInThrottle`). */
  signInThrottle?: GatewayOptions['signInThrottle'];
  /** Where webhook URLs and the secrets of webhooks and callbacks are read from (docs/notifications.md). @default process.env */
  env?: Record<string, string | undefined>;
  /** A gateway config file: single sign-on (`oidc`) and whether passwords are offered (docs/console.md). */
  gatewayConfig?: string;
  /** `/api/v1` load limits: per-account rate and the in-flight bound (429 past them; docs/api.md). @default ApiLimits' */
  apiLimits?: ApiLimitsOptions;
}

export interface RunningConsole {
  url: string;
  gateway: Gateway;
  runtime: Runtime;
  store: LevelStore;
  demo: DemoLoad | null;
  /** Webhook deliveries of the models' `notifications.webhooks`. */
  notifier: WebhookNotifier;
  /** The background re-sealing under a new active data key (null without data keys). */
  rotation: BackgroundRotation | null;
  close(): Promise<void>;
}

/**
 * The runtime clock of an embedded data folder: the system clock, or a {@link ScaledClock} whose origin
 * is kept in the folder's meta so a restart continues it (see {@link ConsoleOptions.timeScale}).
 */
export async function embeddedClock(store: LevelStore, timeScale?: number): Promise<Clock> {
  const stored = await store.getMeta<ClockOrigin>('clock');
  if (timeScale === undefined || timeScale === 1) {
    if (!stored) return systemClock;
    // Stored deadlines were set by the scaled clock: carry on at real speed from where it reads now.
    if (stored.speed === 1) return new ScaledClock(stored);
    const origin = { start: Math.max(Date.now(), new ScaledClock(stored).now()), wallStart: Date.now(), speed: 1 };
    await store.putMeta('clock', origin);
    return new ScaledClock(origin);
  }
  if (stored && stored.speed === timeScale) return new ScaledClock(stored);
  const origin = {
    start: stored ? new ScaledClock(stored).now() : Date.now(),
    wallStart: Date.now(),
    speed: timeScale,
  };
  await store.putMeta('clock', origin);
  return new ScaledClock(origin);
}

/**
 * The embedded deployment behind `handoff start`: the runtime on a LevelDB store in `data` with the
 * system clock, its command server on the in-memory transport, and the gateway serving the console.
 */
export async function startConsole(opts: ConsoleOptions): Promise<RunningConsole> {
  const models = [];
  for (const dir of opts.models) models.push(await loadModel(dir));
  // Checked before the data folder opens: a bad gateway config ends here.
  const gatewayConfig = opts.gatewayConfig
    ? await loadGatewayConfig(opts.gatewayConfig, models, opts.env ?? process.env)
    : null;
  await ensureFolder(opts.data);
  const store = await LevelStore.open(opts.data, { keyring: opts.keyring });
  let rt: Runtime | undefined;
  let notifier: WebhookNotifier | undefined;
  try {
    const clock = await embeddedClock(store, opts.timeScale);
    const world = new LevelWorld(store);
    const log = createLogger({ models, ...(opts.telemetry ? { mixin: opts.telemetry.logMixin() } : {}) });
    notifier = new WebhookNotifier({ store, models, env: opts.env ?? process.env, log });
    const reasoning = await assembleReasoning({ models, store, clock, drift: opts.drift ?? true });
    const inspection = new InspectionStream({ models });
    rt = await Runtime.open({
      store,
      world,
      models,
      clock,
      logger: log,
      planners: reasoning.planners,
      gateFor: reasoning.gateFor,
      inspect: inspection.inspect,
      channels: [notifier],
      telemetry: opts.telemetry?.hook,
    });
    inspection.attach(rt.transport);
    reasoning.attach(rt);
    await opts.telemetry?.attach(rt);
    const commands = serveCommands(rt);
    const gateway = await Gateway.start({
      backend: embeddedBackend(rt),
      inspector: embeddedInspectorBackend(rt),
      host: opts.host ?? '127.0.0.1',
      port: opts.port ?? 7400,
      log: rt.log,
      // Sessions in the data folder: a restart keeps reviewers signed in.
      sessions: { ...opts.sessions, store: new LevelSessionStore(store) },
      ...(gatewayConfig?.oidc ? { oidc: gatewayConfig.oidc } : {}),
      ...(gatewayConfig ? { passwords: gatewayConfig.passwords } : {}),
      ...(opts.env ? { env: opts.env } : {}),
      ...(opts.secureCookies ? { secureCookies: true } : {}),
      ...(opts.allowedOrigins ? { allowedOrigins: opts.allowedOrigins } : {}),
      ...(opts.tls ? { tls: opts.tls } : {}),
      ...(opts.allowPlaintext ? { allowPlaintext: true } : {}),
      ...(opts.trustedProxies ? { trustedProxies: opts.trustedProxies } : {}),
      ...(opts.signInThrottle ? { signInThrottle: opts.signInThrottle } : {}),
      ...(opts.env ? { callbacks: { env: opts.env } } : {}),
      api: embeddedApi(rt, store, opts.apiLimits),
    });
    // Stately's tools on this node: every actor's inspection records, in @statelyai/inspect's format, to a WebSocket inspector.
    const statelyUrl = process.env.HANDOFF_STATELY_INSPECT;
    const stately = statelyUrl ? StatelyBridge.webSocket(models, statelyUrl) : null;
    const statelySub = stately?.connect(embeddedInspectorBackend(rt));
    let demo: DemoLoad | null = null;
    if (opts.demoLoad && opts.demoLoad > 0) {
      demo = new DemoLoad(rt, {
        perMinute: opts.demoLoad,
        ...(opts.demoSeed !== undefined ? { seed: opts.demoSeed } : {}),
      });
      demo.start(opts.demoBurst ?? Math.min(500, Math.ceil(opts.demoLoad)));
    }
    // Retention's automatic pass (docs/governance.md): hourly, over finished episodes only.
    const retention = scheduleRetention({
      store,
      clock,
      retention: retentionOf(models),
      redactor: new Redactor(models),
      onError: (err) => rt?.log.error({ err }, 'retention pass failed'),
    });
    // A new active data key: re-seal the store in the background while the node serves (docs/encryption.md).
    let lastLogged = 0;
    const rotation = opts.keyring
      ? backgroundRotation(store, {
          onProgress: (p) => {
            if (p.scanned - lastLogged < 10_000) return;
            lastLogged = p.scanned;
            log.info(
              { rotation: { target: p.target, scanned: p.scanned, resealed: p.resealed, total: p.total } },
              'data key rotation under way',
            );
          },
          onDone: (r) =>
            log.info(
              { rotation: { target: r.target, scanned: r.scanned, resealed: r.resealed, complete: r.complete } },
              r.complete ? 'data key rotation complete' : 'data key rotation paused; the next start continues it',
            ),
          onError: (err) => log.error({ err }, 'data key rotation failed; the next start continues it'),
        })
      : null;
    const runtime = rt;
    const webhooks = notifier;
    let closing: Promise<void> | null = null;
    return {
      url: gateway.url,
      gateway,
      runtime,
      store,
      demo,
      notifier: webhooks,
      rotation,
      close: () =>
        (closing ??= (async () => {
          demo?.stop();
          await rotation?.stop();
          await retention.stop();
          await gateway.close();
          commands.unsubscribe();
          statelySub?.unsubscribe();
          stately?.stop();
          inspection.close();
          // Deliveries still under way stay in the outbox: the next start sends them.
          await webhooks.close();
          await runtime.close();
          await reasoning.close();
          await store.close();
        })()),
    };
  } catch (err) {
    await notifier?.close();
    await rt?.close().catch(() => undefined);
    await store.close().catch(() => undefined);
    throw err;
  }
}
