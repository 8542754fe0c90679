"""Steps: data sources, prompt steps, task steps and operations."""

from .data_sources import (
    CSVDataSource,
    DataSource,
    HFDatasetDataSource,
    HFHubDataSource,
    JSONDataSource,
    TextDataSource,
)
from .prompt import (
    DataFromAttributedPrompt,
    DataFromPrompt,
    FewShotPrompt,
    FilterWithPrompt,
    JudgeGenerationPairsWithPrompt,
    JudgePairsWithPrompt,
    ProcessWithPrompt,
    Prompt,
    PromptStepError,
    RankWithPrompt,
)
from .prompt.few_shot_prompt_with_retrieval import FewShotPromptWithRetrieval
from .prompt.rag_prompt import RAGPrompt
from .step import Step, StepDeclarationError
from .tasks import CosineSimilarity, Embed, Retrieve, RunTaskModel

__all__ = [
    "CSVDataSource",
    "CosineSimilarity",
    "DataFromAttributedPrompt",
    "DataFromPrompt",
    "DataSource",
    "Embed",
    "FewShotPrompt",
    "FewShotPromptWithRetrieval",
    "FilterWithPrompt",
    "HFDatasetDataSource",
    "HFHubDataSource",
    "JSONDataSource",
    "JudgeGenerationPairsWithPrompt",
    "JudgePairsWithPrompt",
    "ProcessWithPrompt",
    "Prompt",
    "PromptStepError",
    "RAGPrompt",
    "RankWithPrompt",
    "Retrieve",
    "RunTaskModel",
    "Step",
    "StepDeclarationError",
    "TextDataSource",
]
