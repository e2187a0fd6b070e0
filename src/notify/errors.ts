import { HandoffError } from '../contracts/errors.ts';
import { HttpError } from '../httpkit/http.ts';

/**
 * A webhook delivery failed for good: the receiver refused it (`webhook.rejected`, a 4xx other than
 * 429, or a redirect), every attempt failed (`webhook.retries_exhausted`), or the webhook is not
 * configured on this node (`webhook.not_configured`). `status` is the last HTTP status, if any.
 */
export class WebhookDeliveryError extends HandoffError {
  readonly status: number | null;
  constructor(
    code: 'webhook.rejected' | 'webhook.retries_exhausted' | 'webhook.not_configured' | 'webhook.failed',
    message: string,
    details: { webhook: string; status?: number | null; attempts?: number },
    options?: { cause?: unknown },
  ) {
    super(code, message, { ...details }, options);
    this.status = details.status ?? null;
  }
}

/** A notification setting names an environment variable whose value is unusable (the value is never shown). */
export class NotificationConfigError extends HandoffError {
  constructor(message: string, details: { model: string; path: string; env?: string }) {
    super('notify.config_invalid', message, details);
  }
}

/**
 * A callback was refused before or while it was authorised: a missing, malformed, stale, forged or
 * replayed signature (401), an unknown (404) or disabled (503) source.
 */
export class CallbackRefusedError extends HttpError {}
