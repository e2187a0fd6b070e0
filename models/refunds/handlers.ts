import { z } from 'zod';
import { sensitive } from '../../src/contracts/classification.ts';
import { EffectError } from '../../src/contracts/errors.ts';
import { defineHandlers, simulatedAction, type PlanDraft } from '../../src/models/define.ts';
import { Rng, drawFor, hash32 } from '../../src/base/rng.ts';

// ---------------------------------------------------------------------------------------------
// Contracts
// ---------------------------------------------------------------------------------------------

const Channel = z.enum(['web', 'email', 'chat', 'phone']);
type Channel = z.infer<typeof Channel>;

/** A refund request as it arrives from the helpdesk. */
const Signal = z.object({
  ticketId: z.string().min(1),
  orderId: z.string().regex(/^ORD-\d{8}$/, 'expected ORD- followed by 8 digits'),
  reason: z.string().min(1),
  /** Amount the customer asked for, EUR; absent when they simply ask for "a refund". */
  requestedAmount: z.number().positive().optional(),
  channel: Channel,
  /** Support staff id when an agent files the ticket on behalf of a customer. */
  requestedBy: z.string().min(1).optional(),
});
type Signal = z.infer<typeof Signal>;

const OrderStatus = z.enum(['delivered', 'lost', 'damaged']);
type OrderStatus = z.infer<typeof OrderStatus>;

const Fields = z.object({
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
type Fields = z.infer<typeof Fields>;

// ---------------------------------------------------------------------------------------------
// The simulated shop: catalogue, customers and orders, all derived from the order id
// ---------------------------------------------------------------------------------------------

const CATALOGUE: { sku: string; name: string; price: number; weight: number }[] = [
  { sku: 'HOM-1021', name: 'stoneware mug set', price: 24.9, weight: 10 },
  { sku: 'ACC-2210', name: 'phone case', price: 19.99, weight: 10 },
  { sku: 'FSH-3301', name: 'merino wool scarf', price: 39.9, weight: 9 },
  { sku: 'SPT-4410', name: 'yoga mat', price: 34.9, weight: 8 },
  { sku: 'FSH-3350', name: "kids' rain jacket", price: 49.95, weight: 8 },
  { sku: 'AUD-5120', name: 'bluetooth speaker', price: 89.99, weight: 7 },
  { sku: 'SPT-4470', name: 'running shoes', price: 129.95, weight: 8 },
  { sku: 'HOM-1180', name: 'cookware set', price: 189.0, weight: 5 },
  { sku: 'AUD-5190', name: 'noise-cancelling headphones', price: 279.0, weight: 4 },
  { sku: 'KIT-6010', name: 'espresso machine', price: 349.0, weight: 3 },
  { sku: 'WEA-7020', name: 'smartwatch', price: 399.0, weight: 3 },
  { sku: 'FUR-8030', name: 'office chair', price: 429.0, weight: 2.5 },
  { sku: 'FUR-8055', name: 'standing desk', price: 549.0, weight: 1.6 },
  { sku: 'HOM-1290', name: 'robot vacuum', price: 649.0, weight: 1.6 },
  { sku: 'CMP-9100', name: '14" laptop', price: 1499.0, weight: 0.8 },
  { sku: 'SPT-4590', name: 'gravel bike', price: 1899.0, weight: 0.6 },
  { sku: 'CMP-9190', name: '16" pro laptop', price: 2599.0, weight: 1.0 },
  { sku: 'TV-9950', name: '65" OLED TV', price: 2799.0, weight: 0.9 },
];
const CATALOGUE_WEIGHT = CATALOGUE.reduce((s, p) => s + p.weight, 0);

const FIRST_NAMES = [
  'Amélie',
  'Lukas',
  'Sofia',
  'Jonas',
  'Emma',
  'Mateo',
  'Lena',
  'Noah',
  'Chiara',
  'Finn',
  'Julia',
  'Hugo',
  'Marta',
  'Elias',
  'Camille',
  'Luca',
  'Ines',
  'Milan',
  'Sara',
  'Oskar',
  'Hanna',
  'Tomás',
  'Zoé',
  'Piotr',
  'Anouk',
  'Mehmet',
  'Freya',
  'Nils',
];
const LAST_NAMES = [
  'Müller',
  'Dubois',
  'Rossi',
  'de Jong',
  'García',
  'Schmidt',
  'Kowalski',
  'Novak',
  'Bernard',
  'Fischer',
  'Jansen',
  'Romano',
  'Martínez',
  'Weber',
  'Leroy',
  'Peeters',
  'Hofmann',
  'Nielsen',
  'Yılmaz',
  'Costa',
  'Wagner',
  'Lindqvist',
  'Moreau',
  'Bauer',
];
const MAIL_DOMAINS = [
  'gmail.com',
  'web.de',
  'gmx.net',
  'outlook.com',
  'orange.fr',
  'libero.it',
  'ziggo.nl',
  'posteo.de',
  'icloud.com',
];
/** Country code, BBAN length (digits) of the IBAN countries the shop pays out to. */
const IBAN_COUNTRIES: [string, number][] = [
  ['DE', 18],
  ['DE', 18],
  ['DE', 18],
  ['FR', 23],
  ['NL', 14],
  ['ES', 20],
  ['IT', 23],
  ['AT', 16],
  ['BE', 12],
];

const DAY = 86_400_000;
const RETURN_WINDOW_DAYS = 30;
/** Share of order ids that do not exist in the order system (typos, other shops' numbers). */
const MISSING_ORDER_SHARE = 0.022;
/** Share of customers whose mailbox bounces. */
const BOUNCING_MAILBOX_SHARE = 0.02;

const round2 = (x: number) => Math.round(x * 100) / 100;
const clamp01 = (x: number) => Math.min(1, Math.max(0, x));
const eur = (x: number) => `€${x.toFixed(2)}`;

function asciiSlug(s: string): string {
  return s
    .normalize('NFD')
    .replace(/[\u0300-\u036f]/g, '')
    .replace(/ı/g, 'i')
    .toLowerCase()
    .replace(/[^a-z]/g, '');
}

/** A syntactically valid IBAN (ISO 13616 check digits) for a country and a digit-only BBAN. */
function iban(country: string, bban: string): string {
  const numeric = (bban + country + '00').replace(/[A-Z]/g, (c) => String(c.charCodeAt(0) - 55));
  let rem = 0;
  for (const ch of numeric) rem = (rem * 10 + Number(ch)) % 97;
  const check = String(98 - rem).padStart(2, '0');
  return `${country}${check}${bban}`;
}

function pickWeighted(rng: Rng): (typeof CATALOGUE)[number] {
  let x = rng.next() * CATALOGUE_WEIGHT;
  for (const p of CATALOGUE) {
    x -= p.weight;
    if (x < 0) return p;
  }
  return CATALOGUE[CATALOGUE.length - 1]!;
}

/** Whether the mailbox behind an address bounces. Deterministic in the address. */
function mailboxBounces(email: string): boolean {
  return drawFor('refunds', 'mailbox-bounces', email) < BOUNCING_MAILBOX_SHARE;
}

interface OrderFacts {
  amount: number;
  ageDays: number;
  /** Minute of the day at which the order was placed. */
  minuteOfDay: number;
  status: OrderStatus;
  items: Fields['order']['items'];
  customer: Omit<Fields['customer'], 'customerSince'> & { customerSinceDays: number };
}

/** What the order system knows about an order id, or null when there is no such order. */
function orderFacts(orderId: string): OrderFacts | null {
  if (drawFor('refunds', 'order-exists', orderId) < MISSING_ORDER_SHARE) return null;
  const rng = new Rng(`refunds/order/${orderId}`);
  const itemCount = rng.next() < 0.62 ? 1 : rng.next() < 0.7 ? 2 : 3;
  const items: Fields['order']['items'] = [];
  for (let i = 0; i < itemCount; i++) {
    const p = pickWeighted(rng);
    const existing = items.find((it) => it.sku === p.sku);
    if (existing) existing.qty += 1;
    else items.push({ sku: p.sku, name: p.name, qty: p.price < 60 && rng.chance(0.2) ? 2 : 1, unitPrice: p.price });
  }
  const subtotal = items.reduce((s, it) => s + it.qty * it.unitPrice, 0);
  const shipping = subtotal >= 50 ? 0 : 4.95;
  const amount = round2(subtotal + shipping);

  // Most requests come in within a few weeks of the order; a tail comes months later.
  const u = rng.next();
  const ageDays = u < 0.6 ? rng.int(2, 21) : u < 0.84 ? rng.int(22, 30) : u < 0.94 ? rng.int(31, 60) : rng.int(61, 200);
  const minuteOfDay = rng.int(6 * 60, 23 * 60);
  const s = rng.next();
  const status: OrderStatus = s < 0.8 ? 'delivered' : s < 0.9 ? 'damaged' : 'lost';

  const first = rng.pick(FIRST_NAMES);
  const last = rng.pick(LAST_NAMES);
  const sep = rng.pick(['.', '', '_', '.']);
  const suffix = rng.chance(0.4) ? String(rng.int(1, 99)) : '';
  const email = `${asciiSlug(first)}${sep}${asciiSlug(last)}${suffix}@${rng.pick(MAIL_DOMAINS)}`;
  const [country, bbanLength] = rng.pick(IBAN_COUNTRIES);
  let bban = '';
  for (let i = 0; i < bbanLength; i++) bban += String(rng.int(0, 9));

  const lifetimeOrders = rng.next() < 0.35 ? rng.int(1, 3) : rng.int(3, 40);
  const h = rng.next();
  const wanted = h < 0.66 ? 0 : h < 0.86 ? 1 : h < 0.95 ? rng.int(2, 3) : rng.int(4, 9);
  const previousRefunds = Math.min(wanted, lifetimeOrders - 1);

  return {
    amount,
    ageDays,
    minuteOfDay,
    status,
    items,
    customer: {
      customerId: `CUS-${String(hash32(`customer/${email}`) % 10_000_000).padStart(7, '0')}`,
      name: `${first} ${last}`,
      email,
      iban: iban(country, bban),
      customerSinceDays: ageDays + rng.int(0, 6 * 365),
      lifetimeOrders,
      previousRefunds,
    },
  };
}

// ---------------------------------------------------------------------------------------------
// Reading the ticket
// ---------------------------------------------------------------------------------------------

type ReasonKind = 'damaged' | 'notArrived' | 'wrongItem' | 'changedMind' | 'doubleCharge' | 'unclear';

const REASON_PATTERNS: [ReasonKind, RegExp][] = [
  ['doubleCharge', /charged twice|double charge|charged two times|billed twice/i],
  [
    'notArrived',
    /never (arrived|came|received)|not (arrived|received)|didn'?t (arrive|get)|nothing came|lost|still waiting|where is my/i,
  ],
  ['damaged', /broken|damaged|crack|defect|stopped working|won'?t (switch|turn) on|dent|shattered|leak|torn|bent/i],
  ['wrongItem', /wrong (item|size|colou?r|model)|different (colou?r|model|item)|not what i ordered|sent me/i],
  [
    'changedMind',
    /changed my mind|no longer need|don'?t need|doesn'?t fit|too (small|big|large)|not as (described|expected)|not what i expected|return it|unopened|don'?t like/i,
  ],
];

function reasonKind(text: string): ReasonKind {
  for (const [kind, re] of REASON_PATTERNS) if (re.test(text)) return kind;
  return 'unclear';
}

const REASON_TEXTS: Record<Exclude<ReasonKind, 'unclear'> | 'unclear', string[]> = {
  damaged: [
    'The {item} arrived broken, box was crushed.',
    'Screen of the {item} is cracked straight out of the box.',
    "The {item} stopped working after two days, it won't switch on anymore.",
    'Arrived damaged - one leg is bent and there is a dent on the side.',
    'Defective {item}, makes a grinding noise. I would like my money back.',
    'Parcel was soaked and the {item} inside is damaged.',
  ],
  notArrived: [
    'My order never arrived.',
    'Tracking says delivered but I never received the {item}.',
    'Still waiting for my {item}, it has been three weeks. Nothing came.',
    "Package not received, neighbours don't have it either.",
    'Where is my order? The parcel seems to be lost.',
  ],
  wrongItem: [
    'You sent me the wrong size, I ordered M and got XL.',
    'Received a different colour than the one I ordered.',
    'Wrong item in the box - this is not what I ordered.',
    'The {item} is a different model from the one on the website, you sent me the old one.',
  ],
  changedMind: [
    'Changed my mind, I would like to return the {item}.',
    'No longer need it, still unopened.',
    "The {item} doesn't fit, sending it back.",
    'Not what I expected from the photos, want to return it.',
    'Too small for our kitchen unfortunately, please refund.',
  ],
  doubleCharge: [
    'I was charged twice for this order, please refund the second payment.',
    'My card statement shows a double charge for order {order}.',
  ],
  unclear: [
    'Please refund.',
    'not happy with this',
    'Refund pls',
    'I want my money back for order {order}.',
    'Very disappointed.',
  ],
};

/** Which kind of reason a customer would give for an order in this state (most of the time). */
function plausibleKind(status: OrderStatus, rng: Rng): ReasonKind {
  const r = rng.next();
  if (status === 'lost') return r < 0.86 ? 'notArrived' : r < 0.93 ? 'unclear' : 'changedMind';
  if (status === 'damaged') return r < 0.88 ? 'damaged' : r < 0.95 ? 'unclear' : 'notArrived';
  // Delivered parcels: mostly returns; a share of "never arrived" claims contradict the carrier.
  return r < 0.4
    ? 'changedMind'
    : r < 0.6
      ? 'damaged'
      : r < 0.75
        ? 'wrongItem'
        : r < 0.84
          ? 'notArrived'
          : r < 0.89
            ? 'doubleCharge'
            : 'unclear';
}

const SUPPORT_STAFF = ['r-jonas', 'r-amelie', 's-lena', 's-marco', 's-yasmin', 's-pavel'];

// ---------------------------------------------------------------------------------------------
// Actions
// ---------------------------------------------------------------------------------------------

const RefundArgs = z.object({
  orderId: z.string().min(1),
  amount: z.number().positive().multipleOf(0.01),
  currency: z.literal('EUR'),
  iban: sensitive(z.string().min(5)),
});
type RefundArgs = z.infer<typeof RefundArgs>;

const NotifyArgs = z.object({
  email: sensitive(z.string().min(3)),
  template: z.enum(['refund-issued', 'partial-refund-issued', 'refund-declined']),
});
type NotifyArgs = z.infer<typeof NotifyArgs>;

const DeclineArgs = z.object({
  orderId: z.string().min(1),
  reason: z.string().min(1),
});
type DeclineArgs = z.infer<typeof DeclineArgs>;

const issueRefund = simulatedAction(
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

const reverseRefund = simulatedAction('reverseRefund', RefundArgs, (args) => ({
  reversalOf: args.orderId,
  amount: args.amount,
  currency: args.currency,
  status: 'recalled',
}));

const notifyCustomer = simulatedAction(
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

const sendCorrection = simulatedAction('sendCorrection', NotifyArgs, (args) => ({
  correctionOf: args.template,
  status: 'sent',
}));

const declineRefund = simulatedAction('declineRefund', DeclineArgs, (args) => ({
  orderId: args.orderId,
  status: 'declined',
  reason: args.reason,
}));

// ---------------------------------------------------------------------------------------------
// Planning
// ---------------------------------------------------------------------------------------------

const CHANNEL_RISK: Record<Channel, number> = { web: 0.05, chat: 0.1, email: 0.15, phone: 0.2 };

const KIND_LABEL: Record<ReasonKind, string> = {
  damaged: 'damage',
  notArrived: 'non-delivery',
  wrongItem: 'a wrong item',
  changedMind: 'a return (changed mind / does not fit)',
  doubleCharge: 'a double charge',
  unclear: 'no clear reason',
};

function plan(f: Fields): PlanDraft {
  const { order, customer } = f;
  const kind = reasonKind(f.reason);
  const cited = new Set<string>([
    'reason',
    'order.status',
    'order.amount',
    'order.ageDays',
    'customer.previousRefunds',
    'channel',
  ]);
  const notes: string[] = [];
  let decision: 'full' | 'partial' | 'decline';
  let confidence: number;
  let amount = order.amount;
  let mismatch = 0;
  let declineReason = '';

  const inWindow = order.ageDays <= RETURN_WINDOW_DAYS;
  const firstItem = order.items[0]!;
  switch (kind) {
    case 'damaged':
      if (order.status === 'damaged') {
        decision = 'full';
        confidence = 0.94;
        notes.push('the carrier also reported the parcel damaged');
      } else if (order.status === 'lost') {
        decision = 'full';
        confidence = 0.7;
        mismatch = 0.5;
        notes.push('the carrier lists the parcel as lost, yet the customer describes damage');
      } else if (inWindow) {
        decision = 'full';
        confidence = 0.84;
        notes.push(`damage reported ${order.ageDays} days after ordering, within the ${RETURN_WINDOW_DAYS}-day window`);
      } else {
        decision = 'partial';
        amount = round2(order.amount * 0.5);
        confidence = 0.62;
        notes.push(
          `damage reported ${order.ageDays} days after ordering, past the return window: a 50% warranty goodwill refund`,
        );
      }
      break;
    case 'notArrived':
      if (order.status === 'lost') {
        decision = 'full';
        confidence = 0.95;
        notes.push('the carrier confirms the parcel as lost');
      } else if (order.status === 'damaged') {
        decision = 'full';
        confidence = 0.82;
        mismatch = 0.3;
        notes.push('the carrier reported the parcel damaged in transit, so it was likely never handed over intact');
      } else {
        decision = 'decline';
        confidence = customer.previousRefunds >= 2 ? 0.78 : 0.6;
        mismatch = 1;
        declineReason = 'carrier confirms delivery with proof of delivery; please open a carrier investigation';
        notes.push('the carrier confirms delivery, which contradicts the claim');
      }
      break;
    case 'wrongItem':
    case 'changedMind':
      if (order.status === 'lost') {
        decision = 'full';
        confidence = 0.72;
        mismatch = 0.4;
        notes.push('the parcel is lost anyway, so the item cannot be returned');
      } else if (inWindow) {
        decision = 'full';
        confidence = kind === 'wrongItem' ? 0.9 : 0.93;
        notes.push(`${order.ageDays} days after ordering, within the ${RETURN_WINDOW_DAYS}-day return window`);
      } else if (order.ageDays <= 60) {
        decision = 'partial';
        amount = round2(order.amount * 0.5);
        confidence = 0.6;
        notes.push(
          `${order.ageDays} days after ordering, past the ${RETURN_WINDOW_DAYS}-day window: a 50% goodwill refund`,
        );
      } else {
        decision = 'decline';
        confidence = 0.9;
        declineReason = `return requested ${order.ageDays} days after ordering, outside the ${RETURN_WINDOW_DAYS}-day return window`;
        notes.push(`${order.ageDays} days after ordering, well outside the return window`);
      }
      break;
    case 'doubleCharge':
      decision = 'full';
      confidence = 0.66;
      notes.push(
        'a double charge cannot be confirmed from the order record alone; the payment ledger should be checked',
      );
      break;
    case 'unclear':
    default:
      if (inWindow && order.status !== 'delivered') {
        decision = 'full';
        confidence = 0.74;
        notes.push(`no reason given, but the carrier reports the parcel ${order.status}`);
      } else if (inWindow) {
        decision = 'full';
        confidence = 0.55;
        notes.push('no reason given; the order is within the return window, so a refund on return is the default');
      } else {
        decision = 'decline';
        confidence = 0.7;
        declineReason = `no reason given and the order is ${order.ageDays} days old, outside the return window`;
        notes.push('no reason given and the order is outside the return window');
      }
  }

  // The customer's own figure: a smaller amount means a single item or a partial claim; a larger one is capped.
  let overClaim = 0;
  if (f.requestedAmount !== null && decision !== 'decline') {
    cited.add('requestedAmount');
    if (f.requestedAmount > order.amount + 0.005) {
      overClaim = clamp01((f.requestedAmount - order.amount) / order.amount);
      confidence -= 0.12;
      notes.push(
        `the customer asked for ${eur(f.requestedAmount)}, more than the ${eur(order.amount)} paid${decision === 'full' ? '; capped at the order total' : ''}`,
      );
      amount = decision === 'full' ? order.amount : amount;
    } else if (f.requestedAmount < amount - 0.005) {
      amount = round2(f.requestedAmount);
      decision = 'partial';
      confidence += 0.03;
      notes.push(`the customer asked for ${eur(f.requestedAmount)} only`);
    }
  }

  // History and channel adjust how sure the planner can be.
  const refundRate = customer.previousRefunds / customer.lifetimeOrders;
  if (customer.previousRefunds >= 4) {
    confidence -= 0.2;
    notes.push(
      `${customer.previousRefunds} earlier refunds on ${customer.lifetimeOrders} orders is an unusual pattern`,
    );
  } else if (customer.previousRefunds >= 2) {
    confidence -= 0.08;
    notes.push(`${customer.previousRefunds} earlier refunds on ${customer.lifetimeOrders} orders`);
  }
  if (customer.lifetimeOrders <= 1 && decision !== 'decline' && amount > 300) {
    confidence -= 0.1;
    cited.add('customer.lifetimeOrders');
    notes.push('first order from a new customer');
  }
  if (f.reason.trim().length < 20) confidence -= 0.04;
  if (f.requestedBy !== null) {
    confidence += 0.02;
    cited.add('requestedBy');
    notes.push(`filed by staff member ${f.requestedBy} on the customer's behalf`);
  }
  confidence = Math.round(clamp01(confidence) * 100) / 100;

  // Risk: how much money moves, how the customer's history looks, contradictions, age, channel.
  const money = decision === 'decline' ? order.amount * 0.35 : amount;
  const amountRisk = clamp01(money / 2000);
  const historyRisk = clamp01(customer.previousRefunds / 5 + (customer.lifetimeOrders >= 3 ? refundRate * 0.3 : 0));
  const ageRisk = order.ageDays > RETURN_WINDOW_DAYS ? clamp01((order.ageDays - RETURN_WINDOW_DAYS) / 90) : 0;
  const channelRisk = CHANNEL_RISK[f.channel];
  const score = clamp01(
    0.04 +
      0.55 * amountRisk +
      0.3 * historyRisk +
      0.22 * mismatch +
      0.12 * ageRisk +
      0.25 * channelRisk +
      0.2 * overClaim,
  );
  const factors = [
    { name: 'amount', value: round2(amountRisk), note: `${eur(money)} at stake` },
    {
      name: 'customer-history',
      value: round2(historyRisk),
      note: `${customer.previousRefunds} refunds on ${customer.lifetimeOrders} orders`,
    },
    {
      name: 'claim-contradiction',
      value: mismatch,
      note: `ticket says ${KIND_LABEL[kind]}, carrier says ${order.status}`,
    },
    { name: 'order-age', value: round2(ageRisk), note: `${order.ageDays} days since the order` },
    { name: 'channel', value: channelRisk, note: `received via ${f.channel}` },
  ];
  if (overClaim > 0)
    factors.push({ name: 'over-claim', value: round2(overClaim), note: `asked for ${eur(f.requestedAmount!)}` });

  const head = `Order ${f.orderId}: ${eur(order.amount)} for ${order.items.length === 1 ? firstItem.name : `${order.items.length} items`}, ordered ${order.ageDays} days ago, carrier status ${order.status}. The ticket (${f.channel}) reports ${KIND_LABEL[kind]}`;
  let actions: PlanDraft['actions'];
  let verdict: string;
  if (decision === 'decline') {
    actions = [
      {
        type: 'declineRefund',
        args: { orderId: f.orderId, reason: declineReason },
        description: 'Record the refund as declined',
      },
      {
        type: 'notifyCustomer',
        args: { email: customer.email, template: 'refund-declined' },
        description: 'Tell the customer why',
      },
    ];
    verdict = `Decline: ${declineReason}.`;
  } else {
    const partial = decision === 'partial' || amount < order.amount - 0.005;
    actions = [
      {
        type: 'issueRefund',
        args: { orderId: f.orderId, amount, currency: 'EUR', iban: customer.iban },
        description: `Refund ${eur(amount)} to the IBAN on file`,
      },
      {
        type: 'notifyCustomer',
        args: { email: customer.email, template: partial ? 'partial-refund-issued' : 'refund-issued' },
        description: 'Confirm the refund to the customer',
      },
    ];
    verdict = partial ? `Partial refund of ${eur(amount)} of ${eur(order.amount)}.` : `Full refund of ${eur(amount)}.`;
    cited.add('customer.iban');
  }
  cited.add('customer.email');
  const rationale = `${head}: ${notes.join('; ')}. ${verdict}`;
  return {
    actions,
    confidence,
    rationale,
    risk: { score: Math.round(score * 1000) / 1000, factors },
    citedInputs: [...cited],
  };
}

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
