import type { MemberRole, ReadingRole } from "../api/types";

/** Which project role may read in which reading role (annotation/models.py READING_ROLE_MEMBERSHIP). */
export const READING_ROLE_MEMBERSHIP: Record<ReadingRole, MemberRole> = {
  first_reader: "annotator",
  second_reader: "reviewer",
  panel_member: "expert",
};

export function readingRolesFor(roles: MemberRole[]): ReadingRole[] {
  return (Object.keys(READING_ROLE_MEMBERSHIP) as ReadingRole[]).filter((r) =>
    roles.includes(READING_ROLE_MEMBERSHIP[r]),
  );
}

/** A short age such as "5 min", "3 h", "2 d" as [unit key, n]. */
export function ageParts(createdAt: string, now: number = Date.now()): ["age.minutes" | "age.hours" | "age.days", number] {
  const minutes = Math.max(0, Math.floor((now - Date.parse(createdAt)) / 60000));
  if (minutes < 60) return ["age.minutes", minutes];
  const hours = Math.floor(minutes / 60);
  if (hours < 48) return ["age.hours", hours];
  return ["age.days", Math.floor(hours / 24)];
}
