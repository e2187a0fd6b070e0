/** Notifications: webhooks for case events and signed decision callbacks (see docs/notifications.md). */
export {
  CallbackConfig,
  NotificationsConfig,
  WebhookConfig,
  WebhookEventName,
  WebhookRetry,
} from '../contracts/notifications.ts';
export { CallbackEndpoint, CallbackPayload, type CallbackEndpointOptions } from './callbacks.ts';
export { CallbackRefusedError, NotificationConfigError, WebhookDeliveryError } from './errors.ts';
export { caseNotifications, type CaseNotification } from './events.ts';
export { CaseNotificationData, WebhookPayload } from './payload.ts';
export {
  hmacHex,
  MIN_SECRET_BYTES,
  parseSecrets,
  SIGNATURE_HEADER,
  signatureHeader,
  verifySignature,
  type VerifyOptions,
} from './signing.ts';
export { resolveWebhooks, WebhookNotifier, type ResolvedWebhook, type WebhookNotifierOptions } from './webhooks.ts';
