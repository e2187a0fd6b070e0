/**
 * One error class per failure domain. Each carries a stable `code` that survives serialisation over
 * the transport (see {@link toWireError} / {@link fromWireError}) and an optional `cause`.
 */
export class HandoffError extends Error {
  readonly code: string;
  readonly details: Record<string, unknown>;
  constructor(code: string, message: string, details: Record<string, unknown> = {}, options?: { cause?: unknown }) {
    super(message, options);
    this.name = new.target.name;
    this.code = code;
    this.details = details;
  }
}

export interface ContractIssue {
  /** Dotted path of the offending field, e.g. `plan.actions.0.args.amount`. */
  path: string;
  message: string;
}

/** A message failed its contract. `path` names the first bad field; `issues` lists all of them. */
export class ContractError extends HandoffError {
  readonly path: string;
  readonly issues: ContractIssue[];
  constructor(contract: string, issues: ContractIssue[], options?: { cause?: unknown }) {
    const first = issues[0] ?? { path: '', message: 'invalid' };
    super(
      'contract.invalid',
      `${contract}: ${first.path || '(root)'}: ${first.message}${issues.length > 1 ? ` (+${issues.length - 1} more)` : ''}`,
      { contract, issues },
      options,
    );
    this.path = first.path;
    this.issues = issues;
  }
}

export class ActorNotFoundError extends HandoffError {
  constructor(actorId: string) {
    super('actor.not_found', `no actor with id '${actorId}'`, { actorId });
  }
}

export class ActorExistsError extends HandoffError {
  constructor(actorId: string) {
    super('actor.exists', `an actor with id '${actorId}' already exists`, { actorId });
  }
}

/** The actor is in a state that does not accept this event; nothing changed. */
export class EventRejectedError extends HandoffError {
  constructor(actorId: string, eventType: string, state: string, reason: string, rule?: string) {
    super('event.rejected', `${actorId}: '${eventType}' rejected in state '${state}': ${reason}`, {
      actorId,
      eventType,
      state,
      reason,
      ...(rule ? { rule } : {}),
    });
  }
}

/** A reviewer lacks the role, or separation of duties forbids the command. */
export class UnauthorizedError extends HandoffError {
  constructor(message: string, details: Record<string, unknown> = {}) {
    super('auth.forbidden', message, details);
  }
}

/** The command was based on a version of the actor that is no longer current. */
export class ConflictError extends HandoffError {
  constructor(actorId: string, expected: number, actual: number) {
    super('actor.conflict', `${actorId} changed meanwhile (expected version ${expected}, now ${actual})`, {
      actorId,
      expected,
      actual,
    });
  }
}

export class PolicyDeniedError extends HandoffError {
  constructor(ruleId: string, reason: string) {
    super('policy.denied', `denied by ${ruleId}: ${reason}`, { ruleId, reason });
  }
}

/** A model folder failed validation; every problem is listed with its file and path. */
export class ModelError extends HandoffError {
  readonly problems: { file: string; path: string; message: string }[];
  constructor(model: string, problems: { file: string; path: string; message: string }[]) {
    super(
      'model.invalid',
      `model '${model}' is invalid:\n${problems.map((p) => `  ${p.file}: ${p.path || '(root)'}: ${p.message}`).join('\n')}`,
      { model, problems },
    );
    this.problems = problems;
  }
}

/** The actor crashed while handling an event; it was restored from its last durable snapshot. */
export class ActorCrashedError extends HandoffError {
  constructor(actorId: string, cause: unknown) {
    super(
      'actor.crashed',
      `${actorId} crashed: ${cause instanceof Error ? cause.message : String(cause)}`,
      { actorId },
      { cause },
    );
  }
}

/** The actor crashed and restarts after a backoff; retry after `retryAfterMs`. */
export class ActorRestartingError extends HandoffError {
  readonly retryAfterMs: number;
  constructor(actorId: string, retryAfterMs: number) {
    super(
      'actor.restarting',
      `${actorId} is restarting after a crash; retry in ${Math.max(0, Math.round(retryAfterMs))} ms`,
      { actorId, retryAfterMs },
    );
    this.retryAfterMs = retryAfterMs;
  }
}

/** The actor crashed too often and waits for an operator's decision; what is sent to it is dead-lettered. */
export class ActorSuspendedError extends HandoffError {
  constructor(actorId: string, operatorCase: string) {
    super('actor.suspended', `${actorId} is suspended after repeated crashes; operator case ${operatorCase} decides`, {
      actorId,
      operatorCase,
    });
  }
}

/** The runtime is stopping or stopped and accepts no more work. */
export class RuntimeStoppedError extends HandoffError {
  constructor() {
    super('runtime.stopped', 'the runtime is stopped');
  }
}

/** An action's effect failed. `transient` failures are retried; permanent ones start compensation. */
export class EffectError extends HandoffError {
  readonly transient: boolean;
  constructor(message: string, options: { transient: boolean; cause?: unknown; code?: string }) {
    super(
      options.code ?? (options.transient ? 'effect.transient' : 'effect.permanent'),
      message,
      { transient: options.transient },
      options,
    );
    this.transient = options.transient;
  }
}

export interface WireError {
  code: string;
  message: string;
  details?: Record<string, unknown>;
}

export function toWireError(err: unknown): WireError {
  if (err instanceof HandoffError) return { code: err.code, message: err.message, details: err.details };
  return { code: 'internal', message: err instanceof Error ? err.message : String(err) };
}

/** Rebuilds an error received over the wire; the `code` is kept, so callers can branch on it. */
export function fromWireError(wire: WireError): HandoffError {
  return new HandoffError(wire.code, wire.message, wire.details ?? {});
}
