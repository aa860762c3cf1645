"""The check of a row's list of messages, shared by every row format that holds messages (dataset_rows,
preference_rows)."""

ROLES = frozenset({"system", "user", "assistant", "tool"})


def messages_problem(messages: object, field: str, assistant_only: bool = False) -> str | None:
    """Why `messages` is not a usable list of messages (in `field`), or None. An assistant turn may carry `weight`
    0 or 1 (OpenAI's chat fine-tuning format); `assistant_only` refuses any other role (a preference row's answers)."""
    if not isinstance(messages, list) or not messages:
        return f"{field} is not a non-empty list of messages"
    for message in messages:
        if not isinstance(message, dict) or message.get("role") not in ROLES:
            return f"a message in {field} without a known role"
        if not isinstance(message.get("content"), str):
            return f"a message in {field} without text content"
        weight = message.get("weight")
        if weight is not None and (message["role"] != "assistant" or type(weight) is not int or weight not in (0, 1)):
            return f"a message in {field} with a weight that is not 0 or 1 on an assistant turn"
        if assistant_only and message["role"] != "assistant":
            return f"{field} has a message that is not an assistant turn"
    return None
