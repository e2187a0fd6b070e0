/** The refunds model: the signal and the observation fields (zod). */
import { z } from 'zod';
import { sensitive } from '../../src/contracts/classification.ts';

// ---------------------------------------------------------------------------------------------
// Contracts
// ---------------------------------------------------------------------------------------------

export const Channel = z.enum(['web', 'email', 'chat', 'phone']);
export type Channel = z.infer<typeof Channel>;

/** A refund request as it arrives from the helpdesk. */
export const Signal = z.object({
  ticketId: z.string().min(1),
  orderId: z.string().regex(/^ORD-\d{8}$/, 'expected ORD- followed by 8 digits'),
  reason: z.string().min(1),
  /** Amount the customer asked for, EUR; absent when they simply ask for "a refund". */
  requestedAmount: z.number().positive().optional(),
  channel: Channel,
  /** Support staff id when an agent files the ticket on behalf of a customer. */
  requestedBy: z.string().min(1).optional(),
});
export type Signal = z.infer<typeof Signal>;

export const OrderStatus = z.enum(['delivered', 'lost', 'damaged']);
export type OrderStatus = z.infer<typeof OrderStatus>;

export const Fields = z.object({
  ticketId: z.string(),
  orderId: z.string(),
  channel: Channel,
  reason: z.string(),
  requestedAmount: z.number().nullable(),
  requestedBy: z.string().nullable(),
  order: z.object({
    amount: z.number(),
    currency: z.literal('EUR'),
    orderedAt: z.string(),
    ageDays: z.number().int().nonnegative(),
    /** Carrier status of the shipment. */
    status: OrderStatus,
    items: z.array(
      z.object({ sku: z.string(), name: z.string(), qty: z.number().int().positive(), unitPrice: z.number() }),
    ),
  }),
  customer: z.object({
    customerId: z.string(),
    name: sensitive(z.string()),
    email: sensitive(z.string()),
    iban: sensitive(z.string()),
    customerSince: z.string(),
    lifetimeOrders: z.number().int().positive(),
    previousRefunds: z.number().int().nonnegative(),
  }),
});
export type Fields = z.infer<typeof Fields>;
