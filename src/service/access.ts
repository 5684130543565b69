/**
 * Gathers the facts the pure rule in src/domain/access.ts needs, and asks it. Review groups are
 * resolved with Reviewers (Slack user groups included), `viewers` and `admins` user groups with
 * Reviewers.members, channel membership with ChannelMembers (conversations.members).
 *
 * Facts are gathered cheapest first and the rule is asked after each step, so the author of a
 * task never costs a Slack call, and a reviewer never costs a channel lookup. The final answer
 * is always the rule's, given every fact that could grant access.
 *
 * A Viewer keeps one user's facts for the length of one request or one redraw: a list of a
 * thousand tasks asks Slack about each user group and each channel at most once.
 */
import type { Config } from '../config/config.js';
import { maySee, maySeeEvent, noFacts, type AccessFacts, type AccessSubject, type TargetFacts } from '../domain/access.js';
import { includesUser, type People } from '../domain/people.js';
import { isReviewer } from '../domain/review.js';
import type { ChannelMembers } from './channelMembers.js';
import type { Reviewers } from './reviewers.js';

/** What Access needs of Reviewers. */
export type MemberLookups = Pick<Reviewers, 'resolve' | 'members'>;

export class Access {
  constructor(
    private readonly config: Config,
    private readonly lookups: MemberLookups,
    private readonly channels: ChannelMembers | null,
  ) {}

  /** One user's facts, kept while the caller uses it (one request, one redraw). */
  viewer(userId: string): Viewer {
    return new Viewer(this, userId);
  }

  maySee(userId: string, subject: AccessSubject): Promise<boolean> {
    return this.viewer(userId).maySee(subject);
  }

  /** @internal (Viewer) */
  async isAdmin(userId: string): Promise<boolean> {
    return this.isOneOf(this.config.admins ?? null, userId);
  }

  /** @internal (Viewer) What `userId` is to `targetName`; an unknown target grants nothing. */
  async targetFacts(targetName: string, userId: string): Promise<TargetFacts> {
    const target = this.config.targets.get(targetName);
    if (!target) return { reviewer: false, viewer: false };
    const [reviewer, viewer] = await Promise.all([
      target.review ? this.lookups.resolve(target.review).then((resolved) => isReviewer(resolved.policy, userId)) : false,
      this.isOneOf(target.viewers, userId),
    ]);
    return { reviewer, viewer };
  }

  /** @internal (Viewer) */
  async channelMember(channelId: string, userId: string): Promise<boolean> {
    return this.channels ? this.channels.isMember(channelId, userId) : false;
  }

  /** The configured targets, for a Viewer's per-target questions. */
  targetNames(): string[] {
    return [...this.config.targets.keys()];
  }

  private async isOneOf(people: People | null, userId: string): Promise<boolean> {
    if (!people) return false;
    if (people.users.includes(userId)) return true;
    if (people.usergroup === null) return false;
    return includesUser(people, userId, await this.lookups.members(people.usergroup));
  }
}

/**
 * Distinct channels one Viewer may ask Slack about. A list over tasks whose authors chose many
 * channels must not turn one request into thousands of conversations.members calls (and spend
 * the workspace's quota for everyone): past this, a channel seen for the first time grants
 * nothing in this request (fail closed; the user still sees what they authored, review or view).
 */
export const MAX_CHANNEL_LOOKUPS_PER_VIEWER = 25;

export class Viewer {
  private admin: Promise<boolean> | null = null;
  private readonly targets = new Map<string, Promise<TargetFacts>>();
  private readonly channels = new Map<string, Promise<boolean>>();

  constructor(
    private readonly access: Access,
    readonly userId: string,
  ) {}

  isAdmin(): Promise<boolean> {
    this.admin ??= this.access.isAdmin(this.userId);
    return this.admin;
  }

  target(name: string): Promise<TargetFacts> {
    let facts = this.targets.get(name);
    if (!facts) {
      facts = this.access.targetFacts(name, this.userId);
      this.targets.set(name, facts);
    }
    return facts;
  }

  channelMember(channelId: string): Promise<boolean> {
    let member = this.channels.get(channelId);
    if (!member) {
      if (this.channels.size >= MAX_CHANNEL_LOOKUPS_PER_VIEWER) return Promise.resolve(false);
      member = this.access.channelMember(channelId, this.userId);
      this.channels.set(channelId, member);
    }
    return member;
  }

  /** Targets whose tasks this user sees whoever wrote them (reviewer or viewer). */
  async seenTargets(): Promise<string[]> {
    const names = this.access.targetNames();
    const facts = await Promise.all(names.map((name) => this.target(name)));
    return names.filter((_, index) => facts[index]!.reviewer || facts[index]!.viewer);
  }

  /** Targets this user reviews (a member of one of their review groups). */
  async reviewedTargets(): Promise<string[]> {
    const names = this.access.targetNames();
    const facts = await Promise.all(names.map((name) => this.target(name)));
    return names.filter((_, index) => facts[index]!.reviewer);
  }

  async maySee(subject: AccessSubject): Promise<boolean> {
    return maySee(subject, await this.facts(subject));
  }

  /** An audit event, by the task it is about (null: about no task). */
  async maySeeEvent(subject: AccessSubject | null): Promise<boolean> {
    if (subject === null) return maySeeEvent(null, { ...noFacts(this.userId), admin: await this.isAdmin() });
    return this.maySee(subject);
  }

  /** The facts about `subject`, gathered cheapest first until the rule says yes. */
  private async facts(subject: AccessSubject): Promise<AccessFacts> {
    const targets = new Map<string, TargetFacts>();
    let facts: AccessFacts = { ...noFacts(this.userId), targets };
    if (maySee(subject, facts)) return facts;
    for (const name of subject.targets) targets.set(name, await this.target(name));
    if (maySee(subject, facts)) return facts;
    facts = { ...facts, admin: await this.isAdmin() };
    if (maySee(subject, facts) || subject.channelId === null) return facts;
    return { ...facts, channelMember: await this.channelMember(subject.channelId) };
  }
}
