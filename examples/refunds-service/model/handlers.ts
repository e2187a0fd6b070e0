/**
 * The code half of the example model: the signal's contract, perception and the rule planner. Its
 * actions have no code here: they are HTTP actions of model.json, calls to the refunds service.
 */
import { z } from 'zod';
import { sensitive } from '../../../src/contracts/classification.ts';
import { defineHandlers } from '../../../src/models/define.ts';

/** A refund request as the helpdesk posts it to `POST /api/v1/models/shop-refunds/signals`. */
const Signal = z.strictObject({
  ticketId: z.string().min(1),
  orderId: z.string().regex(/^ORD-\d{8}$/, 'expected ORD- followed by 8 digits'),
  amount: z.number().positive().max(10_000),
  email: z.string().min(3),
  reason: z.string().min(1),
});
type Signal = z.infer<typeof Signal>;

const Fields = z.object({
  ticketId: z.string(),
  orderId: z.string(),
  amount: z.number(),
  email: sensitive(z.string()),
  reason: z.string(),
});
type Fields = z.infer<typeof Fields>;

export default defineHandlers<Signal, Fields>({
  signal: Signal,
  fields: Fields,

  async perceive(signal, ctx) {
    return {
      kind: 'refund-request',
      subject: signal.orderId,
      source: 'helpdesk',
      observedAt: ctx.now,
      fields: {
        ticketId: signal.ticketId,
        orderId: signal.orderId,
        amount: signal.amount,
        email: signal.email,
        reason: signal.reason,
      },
    };
  },

  async plan(observation) {
    const f = observation.fields;
    return {
      actions: [
        {
          type: 'issueRefund',
          args: { orderId: f.orderId, amount: f.amount, currency: 'EUR', ticketId: f.ticketId },
          description: `Refund €${f.amount.toFixed(2)} for ${f.orderId}`,
        },
        {
          type: 'notifyCustomer',
          args: { email: f.email, template: 'refund-issued', orderId: f.orderId },
          description: 'Tell the customer',
        },
      ],
      confidence: 0.9,
      rationale: `The customer asks for €${f.amount.toFixed(2)} back on ${f.orderId}: ${f.reason}`,
      risk: {
        score: Math.min(1, 0.1 + f.amount / 10_000),
        factors: [{ name: 'amount', value: Math.min(1, f.amount / 10_000), note: `€${f.amount.toFixed(2)} at stake` }],
      },
      citedInputs: ['amount', 'orderId'],
    };
  },

  // Every action is an HTTP action of model.json.
  actions: {},

  synthesize(rng, index) {
    const amount = Math.round((rng.next() < 0.9 ? 5 + rng.next() * 400 : 500 + rng.next() * 1500) * 100) / 100;
    return {
      ticketId: `T-${String(index + 1).padStart(6, '0')}`,
      orderId: `ORD-${String(rng.int(10_000_000, 99_999_999))}`,
      amount,
      email: rng.next() < 0.05 ? `customer${index}@bounce.invalid` : `customer${index}@example.com`,
      reason: 'The parcel arrived damaged.',
    };
  },
});
