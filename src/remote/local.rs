//! Transport that runs commands and the agent on the machine cbk itself runs on.
