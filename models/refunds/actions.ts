/** The refunds model: the actions and their arguments (simulated effects). */
import { z } from 'zod';
import { sensitive } from '../../src/contracts/classification.ts';
import { EffectError } from '../../src/contracts/errors.ts';
import { simulatedAction } from '../../src/models/define.ts';
import { hash32 } from '../../src/base/rng.ts';
import { eur, mailboxBounces } from './shop.ts';

// ---------------------------------------------------------------------------------------------
// Actions
// ---------------------------------------------------------------------------------------------

export const RefundArgs = z.object({
  orderId: z.string().min(1),
  amount: z.number().positive().multipleOf(0.01),
  currency: z.literal('EUR'),
  iban: sensitive(z.string().min(5)),
});
export type RefundArgs = z.infer<typeof RefundArgs>;

export const NotifyArgs = z.object({
  email: sensitive(z.string().min(3)),
  template: z.enum(['refund-issued', 'partial-refund-issued', 'refund-declined']),
});
export type NotifyArgs = z.infer<typeof NotifyArgs>;

export const DeclineArgs = z.object({
  orderId: z.string().min(1),
  reason: z.string().min(1),
});
export type DeclineArgs = z.infer<typeof DeclineArgs>;

export const issueRefund = simulatedAction(
  'issueRefund',
  RefundArgs,
  (args, ctx) => ({
    refundId: `RF-${hash32(ctx.key).toString(36).toUpperCase()}`,
    orderId: args.orderId,
    amount: args.amount,
    currency: args.currency,
    status: 'submitted',
  }),
  {
    transient: {
      salt: 'refund',
      share: 0.03,
      message: (args) => `payment provider timed out refunding ${eur(args.amount)} for ${args.orderId}`,
    },
  },
);

export const reverseRefund = simulatedAction('reverseRefund', RefundArgs, (args) => ({
  reversalOf: args.orderId,
  amount: args.amount,
  currency: args.currency,
  status: 'recalled',
}));

export const notifyCustomer = simulatedAction(
  'notifyCustomer',
  NotifyArgs,
  (args, ctx) => ({
    messageId: `<${hash32(ctx.key).toString(16)}@mail.shop.example>`,
    template: args.template,
    status: 'sent',
  }),
  {
    transient: { salt: 'smtp', share: 0.01, message: () => 'mail relay unavailable (421 try again later)' },
    check: (args) => {
      if (mailboxBounces(args.email)) {
        throw new EffectError('customer mailbox rejected the message (550 5.1.1 mailbox unavailable)', {
          transient: false,
          code: 'effect.mail_bounced',
        });
      }
    },
  },
);

export const sendCorrection = simulatedAction('sendCorrection', NotifyArgs, (args) => ({
  correctionOf: args.template,
  status: 'sent',
}));

export const declineRefund = simulatedAction('declineRefund', DeclineArgs, (args) => ({
  orderId: args.orderId,
  status: 'declined',
  reason: args.reason,
}));
