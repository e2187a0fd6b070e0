import { EffectError } from '../../src/contracts/errors.ts';
import { defineHandlers } from '../../src/models/define.ts';
import { Channel, Signal, Fields } from './contracts.ts';
import { DAY, round2, eur, orderFacts, type ReasonKind, REASON_TEXTS, plausibleKind, SUPPORT_STAFF } from './shop.ts';
import {
  RefundArgs,
  NotifyArgs,
  DeclineArgs,
  issueRefund,
  reverseRefund,
  notifyCustomer,
  sendCorrection,
  declineRefund,
} from './actions.ts';
import { plan } from './plan.ts';

// ---------------------------------------------------------------------------------------------
// The model
// ---------------------------------------------------------------------------------------------

export default defineHandlers<Signal, Fields>({
  signal: Signal,
  fields: Fields,

  async perceive(signal, ctx) {
    if (ctx.draw('order-lookup') < 0.03) {
      throw new EffectError(`order service timed out looking up ${signal.orderId}`, { transient: true });
    }
    const facts = orderFacts(signal.orderId);
    if (!facts)
      throw new EffectError(`order not found: ${signal.orderId}`, { transient: false, code: 'effect.order_not_found' });
    // Dates are whole days before today, so a retry later the same day sees the same order.
    const today = Math.floor(ctx.now / DAY) * DAY;
    const orderedAt = new Date(today - facts.ageDays * DAY + facts.minuteOfDay * 60_000).toISOString();
    const customerSince = new Date(today - facts.customer.customerSinceDays * DAY).toISOString().slice(0, 10);
    const { customerSinceDays: _, ...customer } = facts.customer;
    const fields: Fields = {
      ticketId: signal.ticketId,
      orderId: signal.orderId,
      channel: signal.channel,
      reason: signal.reason,
      requestedAmount: signal.requestedAmount ?? null,
      requestedBy: signal.requestedBy ?? null,
      order: {
        amount: facts.amount,
        currency: 'EUR',
        orderedAt,
        ageDays: facts.ageDays,
        status: facts.status,
        items: facts.items,
      },
      customer: { ...customer, customerSince },
    };
    return {
      kind: 'refund-request',
      subject: signal.orderId,
      ...(signal.requestedBy ? { requestedBy: signal.requestedBy } : {}),
      source: 'shop-orders',
      observedAt: ctx.now,
      fields: Fields.parse(fields),
      transforms: [
        { name: 'lookup-order', by: 'refunds.perceive', note: `order ${signal.orderId} joined from the order service` },
        { name: 'join-customer', by: 'refunds.perceive', note: `customer ${customer.customerId} with refund history` },
      ],
    };
  },

  async plan(observation) {
    return plan(observation.fields);
  },

  actions: {
    // Descriptions from arguments: shown instead of the planner's text when a reviewer edits them.
    issueRefund: { ...issueRefund, describe: (a: RefundArgs) => `Refund ${eur(a.amount)} to the IBAN on file` },
    reverseRefund: {
      ...reverseRefund,
      describe: (a: RefundArgs) => `Recall the refund of ${eur(a.amount)} for ${a.orderId}`,
    },
    notifyCustomer: { ...notifyCustomer, describe: (a: NotifyArgs) => `E-mail the customer (template ${a.template})` },
    sendCorrection,
    declineRefund: { ...declineRefund, describe: (a: DeclineArgs) => `Record the refund as declined: ${a.reason}` },
  },

  synthesize(rng, index) {
    // Order ids come from the shop's numbering; a few do not exist (typos, another shop's number).
    const orderId = `ORD-${String(rng.int(10_000_000, 99_999_999))}`;
    const facts = orderFacts(orderId);
    const kind: ReasonKind = facts
      ? plausibleKind(facts.status, rng)
      : rng.pick(['damaged', 'notArrived', 'changedMind', 'unclear'] as const);
    const item = facts?.items[0]?.name ?? 'order';
    const reason = rng.pick(REASON_TEXTS[kind]).replace('{item}', item).replace('{order}', orderId);
    const c = rng.next();
    const channel: Channel = c < 0.45 ? 'web' : c < 0.7 ? 'email' : c < 0.88 ? 'chat' : 'phone';
    const requestedBy =
      channel === 'phone' || (channel === 'chat' && rng.chance(0.3)) ? rng.pick(SUPPORT_STAFF) : undefined;

    let requestedAmount: number | undefined;
    if (rng.chance(0.4)) {
      const amount = facts?.amount ?? rng.int(20, 400);
      const r = rng.next();
      if (r < 0.6) requestedAmount = amount;
      else if (r < 0.9 && facts && facts.items.length > 1)
        requestedAmount = facts.items[facts.items.length - 1]!.unitPrice;
      else if (r < 0.93) requestedAmount = round2(amount * rng.pick([0.2, 0.3, 0.5]));
      else requestedAmount = round2(amount * rng.pick([1.1, 1.25, 1.5, 2]));
      if (kind === 'doubleCharge') requestedAmount = amount;
    }
    return {
      ticketId: `T-${String(100_000 + index).padStart(6, '0')}-${String(rng.int(0, 9999)).padStart(4, '0')}`,
      orderId,
      reason,
      ...(requestedAmount !== undefined ? { requestedAmount } : {}),
      channel,
      ...(requestedBy ? { requestedBy } : {}),
    };
  },
});
