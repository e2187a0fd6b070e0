/**
 * `@handoff-hitl/runtime/console`: the reviewer console (HTTP + WebSocket gateway) and the live
 * inspector. Needs the optional packages `ws`, `uplot`, `elkjs`, `@statelyai/inspect` and
 * `openid-client`. See docs/console.md and docs/inspector.md.
 */
export { startConsole, type ConsoleOptions, type RunningConsole } from './app/embedded-console.ts';
export { Gateway, type GatewayOptions } from './gateway/server.ts';
export * from './inspect/index.ts';
