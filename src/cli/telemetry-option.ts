import type { ProcessTelemetry } from '../telemetry/process.ts';

/**
 * The telemetry of a run (`OTEL_*`, `--metrics`), or undefined when neither is configured (then the
 * OpenTelemetry SDK is not even loaded). Its metrics URL is printed on stderr.
 */
export async function processTelemetry(metrics: string | undefined): Promise<ProcessTelemetry | undefined> {
  if (
    metrics === undefined &&
    !process.env.OTEL_EXPORTER_OTLP_ENDPOINT &&
    !process.env.OTEL_EXPORTER_OTLP_TRACES_ENDPOINT
  )
    return undefined;
  const { ProcessTelemetry: Telemetry } = await import('../telemetry/process.ts');
  const t = new Telemetry({ metrics });
  const url = await t.start();
  if (url) process.stderr.write(`metrics ${url}\n`);
  return t;
}
