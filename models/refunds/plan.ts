/** The refunds model: planning from an observation (risk, confidence, the proposed actions). */
import { type PlanDraft } from '../../src/models/define.ts';
import { Channel, Fields } from './contracts.ts';
import { RETURN_WINDOW_DAYS, round2, clamp01, eur, type ReasonKind, reasonKind } from './shop.ts';

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

export function plan(f: Fields): PlanDraft {
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
